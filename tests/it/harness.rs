//! The test builder: a temporary project with its own services.toml and free ports, a
//! runner for the real xtask binary, and a guard that stops everything on drop and
//! fails the test if any process with the project's cookie survives.

use std::fmt;
use std::net::TcpListener;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::sync::OnceLock;
use std::sync::atomic::{AtomicU16, Ordering};
use std::time::{Duration, Instant};

use nix::sys::signal::{Signal, kill};
use nix::unistd::Pid;

/// The fixture service binary.
pub fn fixture() -> &'static str {
    env!("CARGO_BIN_EXE_fixture")
}

/// The xtask binary users run: the build of the `xtask` profile (what `cargo xtask` and
/// make run), built once per run, also when the fixture is a release build (the
/// benchmark). Cargo only tells tests where binaries of their own package are, so this
/// package builds xtask.
pub fn xtask_bin() -> &'static Path {
    static BIN: OnceLock<PathBuf> = OnceLock::new();
    BIN.get_or_init(|| {
        let cargo = std::env::var("CARGO").unwrap_or_else(|_| "cargo".into());
        let status = Command::new(cargo)
            .args(["build", "--quiet", "--profile", "xtask"])
            .args(["--package", "xtask", "--bin", "xtask"])
            .status()
            .expect("run cargo build for xtask");
        assert!(status.success(), "cargo build --profile xtask -p xtask failed");
        let profile_dir = Path::new(fixture()).parent().expect("the fixture's directory");
        let target_dir = profile_dir.parent().expect("the target directory");
        target_dir.join("xtask").join("xtask")
    })
}

/// `text` without the lines that mark a start in a service's log.
fn without_markers(text: &str) -> String {
    text.lines()
        .filter(|l| !l.starts_with("── start "))
        .map(|l| format!("{l}\n"))
        .collect()
}

/// `N` TCP ports that were free a moment ago. They come from below the kernel's
/// ephemeral range (32768 and up), so the client sockets of probes running in parallel
/// tests cannot take them between this call and the service's bind; each port is handed
/// out once per test run.
pub fn free_ports<const N: usize>() -> [u16; N] {
    static NEXT: AtomicU16 = AtomicU16::new(0);
    let base = 20_000 + (std::process::id() % 20) as u16 * 500;
    let _ = NEXT.compare_exchange(0, base, Ordering::SeqCst, Ordering::SeqCst);
    let mut ports = [0; N];
    for slot in &mut ports {
        *slot = loop {
            let port = NEXT.fetch_add(1, Ordering::SeqCst);
            assert!(port < 32_000, "ran out of test ports");
            if TcpListener::bind(("127.0.0.1", port)).is_ok() {
                break port;
            }
        };
    }
    ports
}

/// One finished xtask invocation.
pub struct Run {
    pub args: Vec<String>,
    pub code: Option<i32>,
    pub stdout: String,
    pub stderr: String,
    pub took: Duration,
}

impl fmt::Display for Run {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        writeln!(
            f,
            "$ xtask {}\nexit: {:?} after {:?}",
            self.args.join(" "),
            self.code,
            self.took
        )?;
        writeln!(f, "--- stdout\n{}", self.stdout)?;
        write!(f, "--- stderr\n{}", self.stderr)
    }
}

impl Run {
    fn of(args: &[&str], output: &std::process::Output, started: Instant) -> Run {
        Run {
            args: args.iter().map(|s| s.to_string()).collect(),
            code: output.status.code(),
            stdout: String::from_utf8_lossy(&output.stdout).into_owned(),
            stderr: String::from_utf8_lossy(&output.stderr).into_owned(),
            took: started.elapsed(),
        }
    }

    /// Both streams, for assertions that do not care where a line went.
    pub fn output(&self) -> String {
        format!("{}{}", self.stdout, self.stderr)
    }

    #[track_caller]
    pub fn assert_code(&self, code: i32) -> &Run {
        assert_eq!(self.code, Some(code), "unexpected exit code\n{self}");
        self
    }

    #[track_caller]
    pub fn assert_ok(&self) -> &Run {
        self.assert_code(0)
    }

    #[track_caller]
    pub fn assert_contains(&self, text: &str) -> &Run {
        assert!(
            self.output().contains(text),
            "expected output to contain {text:?}\n{self}"
        );
        self
    }

    #[track_caller]
    pub fn assert_matches(&self, pattern: &str) -> &Run {
        let re = regex::Regex::new(pattern).expect("valid regex");
        assert!(
            re.is_match(&self.output()),
            "expected output to match /{pattern}/\n{self}"
        );
        self
    }
}

/// A temporary project directory with a services.toml. Dropping it stops everything
/// and fails the test if anything of the project survived.
pub struct Project {
    _dir: tempfile::TempDir,
    pub root: PathBuf,
    /// Set for every xtask this project runs (`XTASK_CGROUP=0`).
    env: Vec<(String, String)>,
}

impl Project {
    pub fn new(services_toml: &str) -> Project {
        let dir = tempfile::Builder::new()
            .prefix("xtask-it-")
            .tempdir()
            .expect("temp dir");
        let root = dir.path().canonicalize().expect("canonical temp dir");
        std::fs::write(root.join("services.toml"), services_toml).expect("write services.toml");
        Project {
            _dir: dir,
            root,
            env: Vec::new(),
        }
    }

    /// The project, with `key=value` in the environment of every xtask it runs.
    pub fn with_env(mut self, key: &str, value: &str) -> Project {
        self.env.push((key.to_string(), value.to_string()));
        self
    }

    /// The value this project sets for `key` in the environment of every xtask it runs.
    pub fn env_value(&self, key: &str) -> Option<&str> {
        self.env.iter().rev().find(|(k, _)| k == key).map(|(_, v)| v.as_str())
    }

    pub fn path(&self, relative: &str) -> PathBuf {
        self.root.join(relative)
    }

    pub fn write(&self, relative: &str, text: &str) {
        let path = self.path(relative);
        if let Some(parent) = path.parent() {
            std::fs::create_dir_all(parent).expect("create parent");
        }
        std::fs::write(path, text).expect("write file");
    }

    pub fn command(&self, args: &[&str]) -> Command {
        let mut command = Command::new(xtask_bin());
        command
            .args(args)
            .current_dir(&self.root)
            .env("XTASK_CONFIG", self.root.join("services.toml"))
            .env("NO_COLOR", "1")
            .env_remove("XTASK_PROJECT")
            .env_remove("XTASK_SERVICE")
            .envs(self.env.iter().map(|(k, v)| (k, v)))
            .stdin(Stdio::null())
            .stderr(Stdio::piped());
        command
    }

    /// Starts xtask in the background, its output thrown away (a start the test will
    /// interrupt or whose client it kills).
    pub fn spawn_quietly(&self, args: &[&str]) -> std::process::Child {
        self.command(args)
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("run xtask in the background")
    }

    /// `xtask` with a deadline, for commands whose bug would be a hang: past `timeout`
    /// the process is killed and the test fails.
    pub fn xtask_within(&self, args: &[&str], timeout: Duration) -> Run {
        Project::run_within(self.command(args), args, timeout)
    }

    /// `command` (one of `Project::command`'s) run with a deadline, as `xtask_within`.
    pub fn run_within(mut command: Command, args: &[&str], timeout: Duration) -> Run {
        let started = Instant::now();
        let child = command.stdout(Stdio::piped()).spawn().expect("run xtask");
        let pid = child.id() as i32;
        let (tx, rx) = std::sync::mpsc::channel();
        std::thread::spawn(move || tx.send(child.wait_with_output()));
        let Ok(output) = rx.recv_timeout(timeout) else {
            let _ = kill(Pid::from_raw(pid), Signal::SIGKILL);
            panic!("xtask {args:?} hung for {timeout:?}");
        };
        Run::of(args, &output.expect("run xtask"), started)
    }

    pub fn xtask(&self, args: &[&str]) -> Run {
        let started = Instant::now();
        let output = self.command(args).output().expect("run xtask");
        Run::of(args, &output, started)
    }

    /// `xtask` run from `dir` (relative to the root) as a user types it there: without
    /// `XTASK_CONFIG`, so that it finds its project itself.
    pub fn xtask_from(&self, dir: &str, args: &[&str]) -> Run {
        let started = Instant::now();
        let output = self
            .command(args)
            .current_dir(self.path(dir))
            .env_remove("XTASK_CONFIG")
            .output()
            .expect("run xtask");
        Run::of(args, &output, started)
    }

    /// Another program (cargo, make) run from `dir` (relative to the root) as a user
    /// types it there, with this project's environment and without `XTASK_CONFIG`.
    pub fn program_from(&self, dir: &str, program: &str, args: &[&str]) -> Run {
        let started = Instant::now();
        let output = Command::new(program)
            .args(args)
            .current_dir(self.path(dir))
            .env("NO_COLOR", "1")
            .env_remove("XTASK_CONFIG")
            .env_remove("XTASK_PROJECT")
            .env_remove("XTASK_SERVICE")
            .env_remove("MAKEFLAGS")
            .envs(self.env.iter().map(|(k, v)| (k, v)))
            .stdin(Stdio::null())
            .output()
            .unwrap_or_else(|err| panic!("run {program}: {err}"));
        Run::of(args, &output, started)
    }

    /// The file's text once it has at least `lines` lines (a service without a health
    /// check counts as up when started, before it has written anything).
    #[track_caller]
    /// A service's log lines do not count xtask's start markers (`── start … ──`).
    pub fn read_lines(&self, relative: &str, lines: usize) -> String {
        let path = self.path(relative);
        let mut text = String::new();
        wait_for(&format!("{lines} lines in {relative}"), Duration::from_secs(10), || {
            text = without_markers(&std::fs::read_to_string(&path).unwrap_or_default());
            text.lines().count() >= lines
        });
        text
    }

    /// What the service wrote to its log, without xtask's start markers.
    pub fn log(&self, service: &str) -> String {
        without_markers(&std::fs::read_to_string(self.path(&format!(".xtask/logs/{service}.log"))).unwrap_or_default())
    }

    /// The PID in a service's PID file; 0 when there is none.
    pub fn pid_of(&self, service: &str) -> i32 {
        std::fs::read_to_string(self.path(&format!(".xtask/run/{service}.pid")))
            .ok()
            .and_then(|s| s.trim().parse().ok())
            .unwrap_or(0)
    }

    /// Waits until a service's PID file names a process other than `old`; returns it.
    #[track_caller]
    pub fn wait_for_new_pid(&self, service: &str, old: i32) -> i32 {
        let mut now = 0;
        wait_for(&format!("a new pid for {service}"), Duration::from_secs(20), || {
            now = self.pid_of(service);
            now != old && now != 0
        });
        now
    }

    /// The monitor's event log.
    pub fn monitor_log(&self) -> String {
        std::fs::read_to_string(self.path(".xtask/monitor.log")).unwrap_or_default()
    }

    /// Live processes carrying this project's cookie: (pid, service, command line).
    pub fn cookie_holders(&self) -> Vec<(i32, String, String)> {
        cookie_holders(&self.root)
    }

    /// Live processes of the project's services: the cookie holders without the
    /// detached monitor (whose `XTASK_SERVICE` is `@monitor`).
    pub fn service_processes(&self) -> Vec<(i32, String, String)> {
        self.cookie_holders()
            .into_iter()
            .filter(|(_, service, _)| service != "@monitor")
            .collect()
    }

    /// The detached monitor's PID, if one runs.
    pub fn monitor_pid(&self) -> Option<i32> {
        // The children the monitor runs (a `docker exec` probe, a build) inherit its
        // cookie, and their PIDs may be lower than its own once PIDs wrap: the monitor
        // is the oldest.
        self.cookie_holders()
            .into_iter()
            .filter(|(_, service, _)| service == "@monitor")
            .map(|(pid, _, _)| pid)
            .min_by_key(|pid| start_time_if_alive(*pid).unwrap_or(u64::MAX))
    }

    /// Whether every service of `status --json` is up: running and past its start-up
    /// (healthy, or unhealthy), or completed.
    pub fn all_up(&self) -> bool {
        let run = self.xtask(&["status", "--json"]);
        let json: serde_json::Value = serde_json::from_str(&run.stdout).unwrap_or_default();
        let Some(services) = json["services"].as_array() else {
            return false;
        };
        !services.is_empty()
            && services.iter().all(|s| match s["state"].as_str() {
                Some("completed") => true,
                Some("running") => s["health"] != "starting",
                _ => false,
            })
    }

    /// A foreground `start`, its output thrown away, once it has brought every service
    /// up; the caller ends it (SIGINT, as Ctrl+C).
    #[track_caller]
    pub fn start_in_the_foreground(&self) -> std::process::Child {
        let start = self.spawn_quietly(&["start"]);
        wait_for(
            "the foreground start to bring the stack up",
            Duration::from_secs(30),
            || self.all_up(),
        );
        start
    }

    /// Asserts that nothing of this project runs.
    #[track_caller]
    pub fn assert_nothing_running(&self) {
        let left = self.cookie_holders();
        assert!(left.is_empty(), "processes of the project survived: {left:?}");
    }
}

impl Drop for Project {
    fn drop(&mut self) {
        let stop = self.xtask(&["stop", "--force"]);
        // A log relay ends once its services' output has: it may still be writing their
        // last lines when the stop returns. One that outlives that is a leak.
        let deadline = Instant::now() + Duration::from_secs(5);
        while !self.relays().is_empty() && Instant::now() < deadline {
            std::thread::sleep(Duration::from_millis(10));
        }
        let left = self.leftovers();
        for (pid, _, _) in &left {
            // Only processes proven this test's (its cookie, its directory), by PID.
            let _ = kill(Pid::from_raw(*pid), Signal::SIGKILL);
        }
        let cgroups = self.cgroups();
        if !left.is_empty() && !std::thread::panicking() {
            panic!("`xtask stop --force` left processes of the project running: {left:?}\n{stop}");
        }
        if !cgroups.is_empty() && !std::thread::panicking() {
            panic!("`xtask stop --force` left the project's cgroups: {cgroups:?}\n{stop}");
        }
    }
}

impl Project {
    /// Everything of this project alive: the cookie holders, and the processes working
    /// in its directory (real servers rewrite their titles and lose the cookie).
    pub fn leftovers(&self) -> Vec<(i32, String, String)> {
        let mut left = self.cookie_holders();
        for pid in working_in(&self.root).into_iter().chain(self.relays()) {
            if !left.iter().any(|(p, _, _)| *p == pid) && is_alive(pid) {
                let cmdline = std::fs::read(format!("/proc/{pid}/cmdline")).unwrap_or_default();
                left.push((pid, "?".into(), String::from_utf8_lossy(&cmdline).replace('\0', " ")));
            }
        }
        left
    }

    /// The live log relays of this project: they carry no cookie and work in `/`, but
    /// their arguments name its logs.
    pub fn relays(&self) -> Vec<i32> {
        let logs = self.root.join(".xtask").display().to_string();
        let Ok(dir) = std::fs::read_dir("/proc") else {
            return Vec::new();
        };
        dir.flatten()
            .filter_map(|e| e.file_name().to_string_lossy().parse::<i32>().ok())
            .filter(|pid| {
                let cmdline = std::fs::read(format!("/proc/{pid}/cmdline")).unwrap_or_default();
                let args: Vec<&[u8]> = cmdline.split(|&b| b == 0).collect();
                args.get(1).is_some_and(|a| *a == b"__relay".as_slice())
                    && args.iter().any(|a| a.starts_with(logs.as_bytes()))
            })
            .filter(|pid| is_alive(*pid))
            .collect()
    }

    /// The cgroup directories xtask made for this project (named after its directory).
    pub fn cgroups(&self) -> Vec<PathBuf> {
        let dir = self
            .root
            .file_name()
            .expect("a named temp dir")
            .to_string_lossy()
            .into_owned();
        let prefix = format!("xtask-{dir}-");
        ["/sys/fs/cgroup/unified", "/sys/fs/cgroup"]
            .iter()
            .filter_map(|h| std::fs::read_dir(h).ok())
            .flat_map(|d| d.flatten())
            .filter(|e| e.file_name().to_string_lossy().starts_with(&prefix))
            .map(|e| e.path())
            .collect()
    }
}

/// The team stack of `tests/stacks/team` (PostgreSQL initialised by a job and run as
/// `postgres`, redis, a migration, a cargo-built API, a Python worker) in a fresh
/// project: its files copied, the project directory opened to `postgres` (which must
/// reach its data directory in it; a temporary directory is private), and `PG_BIN`
/// set to where PostgreSQL is installed. Its ports are `auto`: xtask chooses them.
pub fn team_stack() -> Project {
    let source = Path::new(env!("CARGO_MANIFEST_DIR")).join("stacks/team");
    let p = Project::new("");
    copy_tree(&source, &p.root);
    std::fs::set_permissions(&p.root, std::os::unix::fs::PermissionsExt::from_mode(0o755))
        .expect("open the project to postgres");
    // The directory of the real program, where psql, pg_isready and initdb sit beside
    // it: a `postgres` on PATH may be a lone symbolic link (/usr/local/bin here).
    let postgres = std::fs::canonicalize(installed("postgres")).expect("the postgres program");
    let bin = postgres.parent().expect("PostgreSQL's bin directory");
    p.with_env("PG_BIN", &bin.display().to_string())
}

/// Copies the files of `from` into `to`, without what a run of the stack in place
/// would have left there (its state, database and build).
fn copy_tree(from: &Path, to: &Path) {
    for entry in std::fs::read_dir(from).expect("read the stack's directory").flatten() {
        let name = entry.file_name();
        if [".xtask", "data", "target"].iter().any(|skip| name == *skip) {
            continue;
        }
        let (source, target) = (entry.path(), to.join(&name));
        if source.is_dir() {
            std::fs::create_dir_all(&target).expect("create a directory of the stack");
            copy_tree(&source, &target);
        } else {
            std::fs::copy(&source, &target).expect("copy a file of the stack");
        }
    }
}

/// The path of an installed program: on PATH, in /usr/sbin, or among PostgreSQL's
/// programs, which Debian keeps off PATH (`/usr/lib/postgresql/VERSION/bin`).
pub fn installed(name: &str) -> String {
    let dirs = std::env::var("PATH").unwrap_or_default();
    let postgres = std::fs::read_dir("/usr/lib/postgresql")
        .into_iter()
        .flatten()
        .flatten()
        .map(|v| v.path().join("bin"));
    dirs.split(':')
        .map(PathBuf::from)
        .chain(["/usr/sbin".into()])
        .chain(postgres)
        .map(|d| d.join(name))
        .find(|p| p.is_file())
        .unwrap_or_else(|| {
            panic!("`{name}` is not installed: `apt-get install redis-server nginx memcached postgresql`")
        })
        .display()
        .to_string()
}

/// Live processes whose working directory is inside `root`.
pub fn working_in(root: &Path) -> Vec<i32> {
    let Ok(dir) = std::fs::read_dir("/proc") else {
        return Vec::new();
    };
    dir.flatten()
        .filter_map(|e| e.file_name().to_string_lossy().parse::<i32>().ok())
        .filter(|pid| std::fs::read_link(format!("/proc/{pid}/cwd")).is_ok_and(|cwd| cwd.starts_with(root)))
        .collect()
}

/// Scans /proc for processes whose environment has `XTASK_PROJECT=<root>`; zombies
/// have an empty environment and do not count. A process whose main thread has ended
/// shows none either (the read fails), while its other threads run on: theirs is read.
pub fn cookie_holders(root: &Path) -> Vec<(i32, String, String)> {
    let wanted = format!("XTASK_PROJECT={}", root.display());
    let mut found = Vec::new();
    let Ok(dir) = std::fs::read_dir("/proc") else {
        return found;
    };
    for entry in dir.flatten() {
        let Ok(pid) = entry.file_name().to_string_lossy().parse::<i32>() else {
            continue;
        };
        let env = match std::fs::read(entry.path().join("environ")) {
            Ok(env) if !env.is_empty() => env,
            _ => other_threads_environ(&entry.path(), pid),
        };
        let vars: Vec<String> = env
            .split(|&b| b == 0)
            .map(|v| String::from_utf8_lossy(v).into_owned())
            .collect();
        if !vars.contains(&wanted) {
            continue;
        }
        let service = vars
            .iter()
            .find_map(|v| v.strip_prefix("XTASK_SERVICE="))
            .unwrap_or("?")
            .to_string();
        let cmdline = std::fs::read(entry.path().join("cmdline")).unwrap_or_default();
        let cmdline = String::from_utf8_lossy(&cmdline).replace('\0', " ");
        found.push((pid, service, cmdline.trim().to_string()));
    }
    found
}

/// The environment as a thread other than the first sees it (empty when there is none).
fn other_threads_environ(proc_dir: &Path, pid: i32) -> Vec<u8> {
    let Ok(threads) = std::fs::read_dir(proc_dir.join("task")) else {
        return Vec::new();
    };
    threads
        .flatten()
        .filter(|t| t.file_name().to_string_lossy() != pid.to_string())
        .find_map(|t| std::fs::read(t.path().join("environ")).ok().filter(|e| !e.is_empty()))
        .unwrap_or_default()
}

/// Field `n` (1-based, as in proc(5)) of /proc/PID/stat; `None` once the process is gone.
fn stat_field(pid: i32, n: usize) -> Option<String> {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    // Fields 1 and 2 (pid and comm) end at the last ')'; comm may contain spaces.
    let rest = stat.rsplit_once(')')?.1;
    rest.split_whitespace().nth(n - 3).map(str::to_string)
}

/// True while `pid` is a live (not zombie) process.
pub fn is_alive(pid: i32) -> bool {
    !matches!(stat_field(pid, 3).as_deref(), Some("Z") | Some("X") | None)
}

/// Field 22 of /proc/PID/stat, while the process is there.
fn start_time_if_alive(pid: i32) -> Option<u64> {
    stat_field(pid, 22).and_then(|f| f.parse().ok())
}

/// Field 22 of /proc/PID/stat.
pub fn start_time(pid: i32) -> u64 {
    stat_field(pid, 22)
        .and_then(|f| f.parse().ok())
        .expect("start time of a live process")
}

/// Session id (field 6) of a process.
pub fn session_of(pid: i32) -> i32 {
    stat_field(pid, 6)
        .and_then(|f| f.parse().ok())
        .expect("session of a live process")
}

/// utime + stime of a process (fields 14 and 15 of /proc/PID/stat, in clock ticks of
/// 10 ms); `None` once it is gone.
pub fn cpu_time(pid: i32) -> Option<Duration> {
    let ticks = |n| stat_field(pid, n).and_then(|f| f.parse::<u64>().ok());
    let total = ticks(14)?.checked_add(ticks(15)?)?;
    Some(Duration::from_millis(total.saturating_mul(10)))
}

/// The CPU time `pid` uses over `window`. The window is a measurement, not a wait for
/// a condition: an idle process must stay idle for all of it.
#[track_caller]
pub fn cpu_used_over(pid: i32, window: Duration) -> Duration {
    cpu_used_by_a_live_one(pid, window).expect("the process to measure still runs")
}

/// The same, `None` when the process ended during the window (its caller says why).
#[track_caller]
pub fn cpu_used_by_a_live_one(pid: i32, window: Duration) -> Option<Duration> {
    let before = cpu_time(pid).expect("the process to measure runs");
    std::thread::sleep(window);
    let after = cpu_time(pid).filter(|_| is_alive(pid))?;
    Some(after.saturating_sub(before))
}

/// Polls `condition` until it holds or `timeout` passes; the one place tests wait.
#[track_caller]
pub fn wait_for(what: &str, timeout: Duration, condition: impl FnMut() -> bool) {
    assert!(
        poll(timeout, condition),
        "timed out after {timeout:?} waiting for {what}"
    );
}

/// Polls `condition` until it holds (true) or `timeout` has passed (false), for a test
/// that says more than `wait_for` can when the wait fails.
pub fn poll(timeout: Duration, mut condition: impl FnMut() -> bool) -> bool {
    let deadline = Instant::now() + timeout;
    let mut pause = Duration::from_millis(1);
    while !condition() {
        if Instant::now() >= deadline {
            return false;
        }
        std::thread::sleep(pause);
        pause = (pause * 2).min(Duration::from_millis(50));
    }
    true
}

/// A process the test starts itself, unrelated to any project (no cookie); killed by
/// PID on drop.
pub struct Bystander {
    pub child: std::process::Child,
}

impl Bystander {
    pub fn sleep() -> Bystander {
        let child = Command::new("sleep")
            .arg("1000")
            .env_remove("XTASK_PROJECT")
            .env_remove("XTASK_SERVICE")
            .spawn()
            .expect("spawn sleep");
        Bystander { child }
    }

    /// A process carrying `p`'s cookie with the given `XTASK_SERVICE`, its `argv[0]` set
    /// to `title`: what a stranger could start, or a job a service queued with `at`.
    pub fn with_cookie(p: &Project, service: &str, title: &str) -> Bystander {
        use std::os::unix::process::CommandExt;
        let child = Command::new("sleep")
            .arg0(title)
            .arg("1000")
            .env("XTASK_PROJECT", &p.root)
            .env("XTASK_SERVICE", service)
            .spawn()
            .expect("spawn a cookie holder");
        Bystander { child }
    }

    pub fn pid(&self) -> i32 {
        self.child.id() as i32
    }
}

impl Drop for Bystander {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}
