//! The private runtime directory of the port reservations, as another local user can
//! prepare it where its name is free to take. The tests run as root; each gets a
//! temporary directory shared as /tmp is (mode 1777) and points xtask at it (`TMPDIR`,
//! no `XDG_RUNTIME_DIR`), so that the directory xtask uses is `<shared>/xtask-ports-0`
//! and no test meets another's, or the real one. An unprivileged user made for the
//! test (`useradd`, then `setpriv`) prepares that name first. Whatever was prepared,
//! nothing outside xtask's own directory is written, truncated or deleted, no command
//! hangs, the stack starts with a working port and says once that the reservations
//! were not used, and a start that is choosing ports is preempted by a stop.

use std::collections::BTreeMap;
use std::fs::File;
use std::os::unix::fs::{MetadataExt, PermissionsExt};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, SystemTime};

use nix::fcntl::{Flock, FlockArg};

use crate::harness::{Project, Run, fixture, wait_for};

/// Past this, a command hangs.
const HANG: Duration = Duration::from_secs(20);
/// What a preempting `stop --force` may take at most.
const PREEMPTED_WITHIN: Duration = Duration::from_secs(2);
/// The one warning of a start that chose ports without the reservations.
const UNRESERVED: &str = "ports are chosen without the reservations shared by your checkouts";

/// An unprivileged local user made for one test; on drop its processes (started here,
/// ended by PID) and the user are removed, also when the test failed.
pub struct Intruder {
    name: String,
    uid: u32,
    holders: Vec<Child>,
}

impl Intruder {
    pub fn new() -> Intruder {
        static NEXT: AtomicUsize = AtomicUsize::new(0);
        let name = format!("xrt{}n{}", std::process::id(), NEXT.fetch_add(1, Ordering::SeqCst));
        let made = Command::new("useradd")
            .args([
                "--no-create-home",
                "--user-group",
                "--shell",
                "/usr/sbin/nologin",
                &name,
            ])
            .status()
            .expect("run useradd");
        assert!(made.success(), "useradd {name} failed");
        // From here on, the guard removes the user whatever happens.
        let mut intruder = Intruder {
            name,
            uid: 0,
            holders: Vec::new(),
        };
        let id = Command::new("id")
            .args(["-u", &intruder.name])
            .output()
            .expect("run id");
        intruder.uid = String::from_utf8_lossy(&id.stdout)
            .trim()
            .parse()
            .expect("the new user's uid");
        assert_ne!(intruder.uid, 0);
        intruder
    }

    pub fn uid(&self) -> u32 {
        self.uid
    }

    /// `script` run by `sh` as this user, without root's groups.
    fn command(&self, script: &str) -> Command {
        let mut command = Command::new("setpriv");
        command
            .args(["--reuid", &self.name, "--regid", &self.name, "--clear-groups", "--"])
            .args(["sh", "-c", script])
            .env_remove("XTASK_PROJECT")
            .env_remove("XTASK_SERVICE")
            .stdin(Stdio::null());
        command
    }

    /// Runs `script` as this user; it must succeed.
    #[track_caller]
    pub fn run(&self, script: &str) {
        let out = self.command(script).output().expect("run setpriv");
        assert!(
            out.status.success(),
            "as {}: `{script}` failed: {}",
            self.name,
            String::from_utf8_lossy(&out.stderr)
        );
    }

    /// Holds an exclusive flock on `file` as this user until dropped: the script ends
    /// as `sleep`, the locked descriptor open, in the process started here.
    fn hold_lock(&mut self, file: &Path) {
        let script = format!("exec 9<'{}' && flock 9 && exec sleep 1000", file.display());
        let child = self.command(&script).spawn().expect("run setpriv");
        let pid = child.id() as i32;
        self.holders.push(child);
        wait_for("the other user to hold the lock", HANG, || {
            std::fs::read_to_string(format!("/proc/{pid}/comm")).is_ok_and(|comm| comm.trim() == "sleep")
        });
    }
}

impl Drop for Intruder {
    fn drop(&mut self) {
        for holder in &mut self.holders {
            let _ = holder.kill();
            let _ = holder.wait();
        }
        let removed = Command::new("userdel").arg(&self.name).status();
        if !std::thread::panicking() {
            assert!(removed.is_ok_and(|s| s.success()), "userdel {} failed", self.name);
        }
    }
}

/// A shared temporary directory with a name taken first by another user, and files of
/// ours elsewhere that a symbolic link there can point at.
struct Trap {
    /// Shared as /tmp: world-writable, sticky.
    shared: tempfile::TempDir,
    /// Root's own files, outside the shared directory.
    ours: tempfile::TempDir,
    intruder: Intruder,
}

impl Trap {
    fn new() -> Trap {
        let shared = tempfile::Builder::new()
            .prefix("xtask-rt-shared-")
            .tempdir()
            .expect("temp dir");
        std::fs::set_permissions(shared.path(), std::fs::Permissions::from_mode(0o1777)).expect("chmod 1777");
        let ours = tempfile::Builder::new()
            .prefix("xtask-rt-ours-")
            .tempdir()
            .expect("temp dir");
        std::fs::write(ours.path().join("stand-in"), "a file of root's that must not change\n").expect("write");
        // A private directory of root's with files older than any reservation: would a
        // link to it be followed, it would pass every check of the directory itself.
        let old = ours.path().join("old");
        std::fs::create_dir(&old).expect("mkdir");
        std::fs::set_permissions(&old, std::fs::Permissions::from_mode(0o700)).expect("chmod 700");
        let an_hour_ago = SystemTime::now() - Duration::from_secs(3600);
        for name in ["notes.txt", "12345", "lock"] {
            let file = File::create(old.join(name)).expect("create an old file");
            file.set_modified(an_hour_ago).expect("date it back");
        }
        Trap {
            shared,
            ours,
            intruder: Intruder::new(),
        }
    }

    fn runtime(&self) -> PathBuf {
        runtime_in(self.shared.path())
    }

    fn stand_in(&self) -> PathBuf {
        self.ours.path().join("stand-in")
    }

    fn old_dir(&self) -> PathBuf {
        self.ours.path().join("old")
    }

    /// The shared directory and root's files: what must not change.
    fn snapshot(&self) -> BTreeMap<PathBuf, String> {
        let mut all = BTreeMap::new();
        for root in [self.shared.path(), self.ours.path()] {
            snapshot(root, &mut all);
        }
        all
    }

    fn project(&self) -> Project {
        project_in(self.shared.path())
    }

    /// Removes what the other user left in the directory's place, as the warning says
    /// (never following a link).
    fn clear(&self) {
        let runtime = self.runtime();
        let meta = std::fs::symlink_metadata(&runtime).expect("the other user's entry");
        if meta.is_dir() {
            std::fs::remove_dir_all(&runtime).expect("remove the other user's directory");
        } else {
            std::fs::remove_file(&runtime).expect("remove the other user's entry");
        }
    }
}

/// A project with one `port = "auto"` service, its xtask pointed at `shared` as the
/// temporary directory, with no `XDG_RUNTIME_DIR`.
fn project_in(shared: &Path) -> Project {
    let fx = fixture();
    Project::new(&format!(
        "[services.web]\ncommand = [\"{fx}\", \"--port\", \"${{PORT}}\"]\nport = \"auto\"\n"
    ))
    .with_env("TMPDIR", &shared.display().to_string())
    .with_env("XDG_RUNTIME_DIR", "")
}

/// Where xtask keeps root's reservations with `shared` as the temporary directory.
fn runtime_in(shared: &Path) -> PathBuf {
    shared.join(format!("xtask-ports-{}", nix::unistd::geteuid()))
}

/// Every entry under `dir`, not following links: its kind, mode, owner, size, time of
/// modification and, for a regular file, its text.
fn snapshot(dir: &Path, into: &mut BTreeMap<PathBuf, String>) {
    let mut entries: Vec<_> = std::fs::read_dir(dir).expect("read dir").flatten().collect();
    entries.sort_by_key(|e| e.file_name());
    for entry in entries {
        let path = entry.path();
        let meta = std::fs::symlink_metadata(&path).expect("lstat");
        let mut line = format!(
            "{:?} mode {:o} uid {} size {} mtime {}.{}",
            meta.file_type(),
            meta.mode(),
            meta.uid(),
            meta.size(),
            meta.mtime(),
            meta.mtime_nsec()
        );
        if meta.is_file() {
            line.push_str(&format!(
                " text {:?}",
                std::fs::read_to_string(&path).unwrap_or_default()
            ));
        } else if meta.file_type().is_symlink() {
            line.push_str(&format!(" -> {:?}", std::fs::read_link(&path).expect("readlink")));
        }
        into.insert(path.clone(), line);
        if meta.is_dir() {
            snapshot(&path, into);
        }
    }
}

/// Removes the port chosen before: free, it would be kept, and no port chosen.
fn forget_the_port(p: &Project) {
    let _ = std::fs::remove_file(p.path(".xtask/ports.json"));
}

/// The port `status` shows for web.
fn chosen_port(p: &Project) -> u16 {
    let status = p.xtask_within(&["status", "--json"], HANG);
    let json: serde_json::Value = serde_json::from_str(&status.stdout).expect("status --json");
    json["services"][0]["ports"][0].as_u64().expect("a chosen port") as u16
}

/// What the other user prepared does nothing: nothing in the shared directory or of
/// root's changes, no command hangs, and the start gets a working port with one warning
/// that names why the reservations were not used. Then the user removes the entry, as
/// the warning says: the next start makes the directory, private, and a `stop --force`
/// preempts a start that is choosing ports in it.
#[track_caller]
fn the_trap_springs_on_nothing(trap: &Trap, why: &str) {
    let p = trap.project();
    let before = trap.snapshot();
    let start = p.xtask_within(&["start-bg"], HANG);
    assert_unchanged(&before, &trap.snapshot(), &start);
    start
        .assert_ok()
        .assert_contains(&format!("{UNRESERVED}: {}", trap.runtime().display()));
    start.assert_contains(why);
    assert_eq!(start.output().matches(UNRESERVED).count(), 1, "one warning\n{start}");
    let port = chosen_port(&p);
    assert!(
        std::net::TcpStream::connect(("127.0.0.1", port)).is_ok(),
        "web does not listen on its port {port}\n{start}"
    );
    let stop = p.xtask_within(&["stop"], HANG);
    stop.assert_ok();
    assert_unchanged(&before, &trap.snapshot(), &stop);

    trap.clear();
    let runtime = trap.runtime();
    a_start_makes_it_private(&p, &runtime);
    let (took, run) = preempt_a_start_choosing_ports(&p, &runtime, &["stop", "--force"]);
    run.assert_ok();
    assert!(took < PREEMPTED_WITHIN, "took {took:?}\n{run}");
}

#[track_caller]
fn assert_unchanged(before: &BTreeMap<PathBuf, String>, after: &BTreeMap<PathBuf, String>, run: &Run) {
    let changed: Vec<_> = after
        .iter()
        .filter(|(path, line)| before.get(*path) != Some(line))
        .map(|(path, line)| format!("{}: {line}", path.display()))
        .chain(
            before
                .keys()
                .filter(|k| !after.contains_key(*k))
                .map(|k| format!("{}: gone", k.display())),
        )
        .collect();
    assert!(
        changed.is_empty(),
        "files outside xtask's own changed: {changed:#?}\n{run}"
    );
}

/// A start where the directory is missing makes it: a directory (0700) of root's.
#[track_caller]
fn a_start_makes_it_private(p: &Project, runtime: &Path) {
    forget_the_port(p);
    let start = p.xtask_within(&["start-bg"], HANG);
    start.assert_ok();
    assert!(!start.output().contains(UNRESERVED), "{start}");
    p.xtask_within(&["stop"], HANG).assert_ok();
    let meta = std::fs::symlink_metadata(runtime).expect("the runtime directory");
    assert!(meta.is_dir(), "{meta:?}");
    assert_eq!((meta.mode() & 0o7777, meta.uid()), (0o700, 0), "made private, root's");
}

/// Runs `command` while a start-bg waits for the reservations' lock, which the test
/// holds (another start, stuck); returns how long it took and its run. The start must
/// have ended interrupted (130), nothing of it running.
fn preempt_a_start_choosing_ports(p: &Project, runtime: &Path, command: &[&str]) -> (Duration, Run) {
    let lock = File::open(runtime.join("lock")).expect("the reservations' lock file");
    let held = Flock::lock(lock, FlockArg::LockExclusive).expect("hold the reservations' lock");
    forget_the_port(p);
    let mut start = p.spawn_quietly(&["start-bg"]);
    wait_for("the start to choose ports", HANG, || {
        std::fs::read_to_string(p.path(".xtask/lock")).is_ok_and(|l| l.contains("choosing ports"))
    });
    let run = p.xtask_within(command, HANG);
    let took = run.took;
    let mut code = None;
    wait_for("the preempted start to end", HANG, || {
        code = start.try_wait().expect("wait for the start");
        code.is_some()
    });
    drop(held);
    assert_eq!(
        code.and_then(|c| c.code()),
        Some(130),
        "the start was not preempted\n{run}"
    );
    p.assert_nothing_running();
    (took, run)
}

#[test]
fn a_lock_that_links_to_a_file_of_roots_leaves_it_untouched() {
    let trap = Trap::new();
    let dir = trap.runtime();
    trap.intruder.run(&format!(
        "mkdir -m 777 '{}' && ln -s '{}' '{}/lock'",
        dir.display(),
        trap.stand_in().display(),
        dir.display()
    ));
    the_trap_springs_on_nothing(&trap, &format!("belongs to uid {}", trap.intruder.uid));
}

#[test]
fn a_directory_that_links_to_one_of_roots_loses_nothing() {
    let trap = Trap::new();
    trap.intruder.run(&format!(
        "ln -s '{}' '{}'",
        trap.old_dir().display(),
        trap.runtime().display()
    ));
    the_trap_springs_on_nothing(&trap, "is a symbolic link");
}

#[test]
fn a_fifo_lock_hangs_nothing() {
    let trap = Trap::new();
    let dir = trap.runtime();
    trap.intruder.run(&format!(
        "mkdir -m 777 '{}' && mkfifo -m 666 '{}/lock'",
        dir.display(),
        dir.display()
    ));
    the_trap_springs_on_nothing(&trap, &format!("belongs to uid {}", trap.intruder.uid));
}

#[test]
fn a_directory_of_another_user_holding_its_lock_is_not_used() {
    let mut trap = Trap::new();
    let dir = trap.runtime();
    trap.intruder.run(&format!(
        "mkdir -m 755 '{}' && touch '{}/lock'",
        dir.display(),
        dir.display()
    ));
    trap.intruder.hold_lock(&dir.join("lock"));
    the_trap_springs_on_nothing(&trap, &format!("belongs to uid {}", trap.intruder.uid));
}

#[test]
fn a_directory_filled_with_fresh_reservations_denies_no_port() {
    let trap = Trap::new();
    let dir = trap.runtime();
    let range = std::fs::read_to_string("/proc/sys/net/ipv4/ip_local_port_range").expect("the ephemeral ports");
    let (low, high) = range.split_once(char::is_whitespace).expect("two numbers");
    trap.intruder.run(&format!(
        "mkdir -m 755 '{dir}' && cd '{dir}' && touch lock && seq {} {} | xargs touch",
        low.trim(),
        high.trim(),
        dir = dir.display()
    ));
    the_trap_springs_on_nothing(&trap, &format!("belongs to uid {}", trap.intruder.uid));
}

/// Stop wins over a start in every phase, choosing ports too: while another start
/// (stuck) holds the reservations' lock, `stop --force`, `stop` and `cleanup` make the
/// waiting start abandon (130) and are done within 2 s, not refused after 3 s (75).
#[test]
fn stop_stop_force_and_cleanup_preempt_a_start_choosing_ports() {
    let shared = tempfile::Builder::new()
        .prefix("xtask-rt-shared-")
        .tempdir()
        .expect("temp dir");
    let runtime = runtime_in(shared.path());
    let p = project_in(shared.path());
    // As an earlier start left it.
    std::fs::create_dir(&runtime).expect("mkdir");
    std::fs::set_permissions(&runtime, std::fs::Permissions::from_mode(0o700)).expect("chmod 700");
    File::create(runtime.join("lock")).expect("create the lock file");
    for command in [&["stop", "--force"][..], &["stop"], &["cleanup"]] {
        let (took, run) = preempt_a_start_choosing_ports(&p, &runtime, command);
        run.assert_ok()
            .assert_contains("is starting services: asking it to abandon and roll back");
        assert!(took < PREEMPTED_WITHIN, "took {took:?}\n{run}");
    }
}
