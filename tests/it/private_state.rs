//! The state directory is the user's alone, and what is planted in it is not obeyed:
//! its modes (0700, 0600) with a secret from a 0600 `.env` in a command, also over the
//! 0755 directory of an older xtask; symbolic links, FIFOs and huge files where its
//! files belong; `--lock-fd` naming anything but the held lock; and `status` naming
//! the project's processes that no record names.

use std::os::unix::fs::{MetadataExt, PermissionsExt};
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use nix::sys::signal::{Signal, kill};
use nix::unistd::Pid;

use crate::harness::{Bystander, Project, Run, fixture, is_alive, start_time, wait_for};

const LONG: Duration = Duration::from_secs(20);
const SECRET: &str = "s3cret-from-dotenv";

/// A project whose one service, `api`, gets a password from a 0600 `.env` into its
/// command line (hence into its record), prints it (hence into its log), and first
/// prints its umask.
fn project_with_a_secret() -> Project {
    let fx = fixture();
    let p = Project::new(&format!(
        "[project]\nenv_file = \".env\"\n\n[services.api]\ncommand = \"umask; exec {fx} --log 'connecting with ${{DB_PASSWORD}}'\"\n"
    ));
    p.write(".env", &format!("DB_PASSWORD={SECRET}\n"));
    set_mode(&p.path(".env"), 0o600);
    p
}

fn set_mode(path: &Path, mode: u32) {
    std::fs::set_permissions(path, std::fs::Permissions::from_mode(mode)).expect("chmod");
}

/// The permission bits of `path`; `None` once it is gone (a temporary file of a write).
fn mode_of(path: &Path) -> Option<u32> {
    std::fs::symlink_metadata(path).ok().map(|m| m.mode() & 0o7777)
}

/// The project with its `state_dir` in `shared/`, a directory everyone may write (as
/// `/tmp` is); returns it, that directory and the project's services.toml before.
fn state_in_a_shared_place() -> (Project, PathBuf, String) {
    let p = project_with_a_secret();
    let shared = p.path("shared");
    std::fs::create_dir(&shared).expect("mkdir shared");
    set_mode(&shared, 0o1777);
    let toml = std::fs::read_to_string(p.path("services.toml")).expect("read services.toml");
    p.write(
        "services.toml",
        &toml.replace("[project]\n", "[project]\nstate_dir = \"shared/state\"\n"),
    );
    (p, shared, toml)
}

/// Every file and directory below `dir`, `dir` included.
fn tree(dir: &Path) -> Vec<PathBuf> {
    let mut all = vec![dir.to_path_buf()];
    for entry in std::fs::read_dir(dir).expect("read dir").flatten() {
        let path = entry.path();
        if entry.file_type().is_ok_and(|t| t.is_dir()) {
            all.extend(tree(&path));
        } else {
            all.push(path);
        }
    }
    all
}

/// The umask this test process (and so xtask, and its services) runs with.
fn own_umask() -> String {
    let status = std::fs::read_to_string("/proc/self/status").expect("read /proc/self/status");
    status
        .lines()
        .find_map(|l| l.strip_prefix("Umask:"))
        .expect("a Umask line")
        .trim()
        .to_string()
}

/// Every directory of the state directory is 0700 and every file 0600, `expected`
/// among them; a file that holds the secret anywhere in the project is the user's alone.
#[track_caller]
fn assert_private(p: &Project, expected: &[&str]) {
    let state = p.path(".xtask");
    let mut wrong = Vec::new();
    for path in tree(&state) {
        let Some(mode) = mode_of(&path) else { continue };
        let want = if path.is_dir() { 0o700 } else { 0o600 };
        if mode != want {
            wrong.push(format!("{mode:o} {}", path.display()));
        }
    }
    assert!(wrong.is_empty(), "not private:\n{}", wrong.join("\n"));
    for path in tree(&p.root) {
        let holds_secret =
            path.is_file() && std::fs::read(&path).is_ok_and(|b| String::from_utf8_lossy(&b).contains(SECRET));
        if holds_secret {
            let mode = mode_of(&path).unwrap_or(0);
            assert_eq!(
                mode & 0o077,
                0,
                "{} ({mode:o}) holds the secret for others to read",
                path.display()
            );
        }
    }
    for file in expected {
        assert!(state.join(file).exists(), "no {file} was written");
    }
}

#[test]
fn the_state_directory_and_its_files_are_private_without_touching_the_services_umask() {
    let fresh = project_with_a_secret();
    // What an older xtask left: everything open to others, a rotated log included.
    let older = project_with_a_secret();
    for dir in [".xtask", ".xtask/run", ".xtask/logs"] {
        std::fs::create_dir_all(older.path(dir)).expect("create the old state directory");
        set_mode(&older.path(dir), 0o755);
    }
    for file in [
        ".xtask/logs/api.log",
        ".xtask/logs/api.log.1",
        ".xtask/monitor.log",
        ".xtask/lock",
    ] {
        older.write(file, "an older run\n");
        set_mode(&older.path(file), 0o644);
    }
    for p in [&fresh, &older] {
        p.xtask(&["start-bg"]).assert_ok();
        // The older project's log has a line of its own before this run's.
        wait_for("the service to print the secret", LONG, || {
            p.log("api").contains(&format!("connecting with {SECRET}"))
        });
        let record = std::fs::read_to_string(p.path(".xtask/run/api.json")).expect("the record");
        assert!(
            record.contains(SECRET),
            "the record should hold the command line:\n{record}"
        );
        p.xtask(&["status"]).assert_ok();
        let running = [
            "run/api.json",
            "run/api.pid",
            "logs/api.log",
            "logs/.api.log.lines",
            "lock",
            "monitor.json",
        ];
        assert_private(p, &running);
        // The services keep the umask they were given: xtask never changed its own.
        let umask = own_umask();
        assert!(
            p.log("api").lines().any(|l| l == umask),
            "the service's umask is not {umask}:\n{}",
            p.log("api")
        );
        p.xtask(&["stop"]).assert_ok();
        assert_private(p, &["logs/api.log", "lock"]);
    }
}

/// A symbolic link planted where the log, the lock or a record belongs is refused with
/// a clear error, and its target is neither written nor trusted; stop still works.
#[test]
fn a_symbolic_link_planted_in_the_state_directory_is_not_followed() {
    let p = project_with_a_secret();
    let victim = p.path("victim");
    p.write("victim", "the user's data\n");
    std::fs::create_dir_all(p.path(".xtask/logs")).expect("create logs/");
    std::fs::create_dir_all(p.path(".xtask/run")).expect("create run/");
    let refused = "it is a symbolic link, which xtask never follows in its state directory (its target was not touched); remove it";

    std::os::unix::fs::symlink(&victim, p.path(".xtask/logs/api.log")).expect("plant a log");
    p.xtask(&["start-bg"])
        .assert_code(73)
        .assert_contains(&format!("logs/api.log: {refused}"));
    assert_eq!(std::fs::read_to_string(&victim).expect("victim"), "the user's data\n");
    p.assert_nothing_running();
    std::fs::remove_file(p.path(".xtask/logs/api.log")).expect("remove the planted log");

    let _ = std::fs::remove_file(p.path(".xtask/lock"));
    std::os::unix::fs::symlink(&victim, p.path(".xtask/lock")).expect("plant a lock");
    p.xtask(&["start-bg"])
        .assert_code(73)
        .assert_contains(&format!("lock: {refused}"));
    // A stop needs no lock that nobody can take: it goes on without, and says so.
    p.xtask(&["stop"]).assert_ok().assert_contains("ran without the lock");
    assert_eq!(std::fs::read_to_string(&victim).expect("victim"), "the user's data\n");
    std::fs::remove_file(p.path(".xtask/lock")).expect("remove the planted lock");

    // A record pointing at a file that names a live process: trusted, that process
    // would be taken for the service, and stopped.
    let bystander = Bystander::sleep();
    let pid = bystander.pid();
    let forged = serde_json::json!({
        "service": "api", "pid": pid, "pgid": pid, "start_time": start_time(pid),
        "command": "forged", "started_at_ms": 0, "restarts": 0, "state": "healthy",
        "healthy_after_ms": 1, "last_exit": null, "log": p.path(".xtask/logs/api.log"), "ports": []
    })
    .to_string();
    p.write("forged.json", &forged);
    std::os::unix::fs::symlink(p.path("forged.json"), p.path(".xtask/run/api.json")).expect("plant a record");
    p.xtask(&["status"])
        .assert_code(1)
        .assert_contains(&format!("api: stale record: it cannot be read ({refused})"));
    // The stop removes the link as a stale record, and signals nobody.
    p.xtask(&["stop"]).assert_ok();
    assert!(is_alive(pid), "a record planted as a link got a bystander signalled");
    assert!(
        p.path(".xtask/run/api.json").symlink_metadata().is_err(),
        "the stop left the planted record"
    );
    assert_eq!(std::fs::read_to_string(p.path("forged.json")).expect("forged"), forged);
}

/// A FIFO where a record belongs would block every reader, a huge file would be read
/// whole: both are reported as untrustworthy, at once.
#[test]
fn a_fifo_or_a_huge_file_as_a_record_is_reported_without_waiting() {
    let p = project_with_a_secret();
    std::fs::create_dir_all(p.path(".xtask/run")).expect("create run/");
    let record = p.path(".xtask/run/api.json");
    nix::unistd::mkfifo(&record, nix::sys::stat::Mode::from_bits_truncate(0o600)).expect("mkfifo");
    p.xtask_within(&["status"], LONG)
        .assert_code(1)
        .assert_contains("api: stale record: it cannot be read (not a regular file");
    p.xtask_within(&["cleanup"], LONG).assert_ok();

    let huge = std::fs::File::create(&record).expect("create a huge record");
    huge.set_len(5 * 1024 * 1024).expect("grow it");
    p.xtask_within(&["status"], LONG)
        .assert_code(1)
        .assert_contains("api: stale record: it cannot be read (it is larger than 4096 KiB");
    p.xtask_within(&["cleanup"], LONG)
        .assert_ok()
        .assert_contains("removed 1 stale record(s)");
}

/// `xtask __monitor --lock-fd 5` with `file` open as descriptor 5 (not holding any
/// lock), killed past `LONG`.
fn monitor_with_fd_5(p: &Project, file: &Path) -> Run {
    let base = p.command(&["__monitor", "--lock-fd", "5"]);
    let mut sh = Command::new("sh");
    sh.arg("-c")
        .arg("exec \"$0\" \"$@\" 5<\"$HANDED\"")
        .arg(base.get_program())
        .args(base.get_args())
        .env("HANDED", file)
        .current_dir(&p.root)
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped());
    for (key, value) in base.get_envs() {
        match value {
            Some(value) => sh.env(key, value),
            None => sh.env_remove(key),
        };
    }
    let started = Instant::now();
    let child = sh.spawn().expect("run xtask through sh");
    let pid = child.id() as i32;
    let (tx, rx) = std::sync::mpsc::channel();
    std::thread::spawn(move || tx.send(child.wait_with_output()));
    let Ok(output) = rx.recv_timeout(LONG) else {
        let _ = kill(Pid::from_raw(pid), Signal::SIGKILL);
        panic!(
            "xtask __monitor --lock-fd 5 (fd 5: {}) hung for {LONG:?}",
            file.display()
        );
    };
    let output = output.expect("run xtask");
    Run {
        args: vec!["__monitor".into(), "--lock-fd".into(), "5".into()],
        code: output.status.code(),
        stdout: String::from_utf8_lossy(&output.stdout).into_owned(),
        stderr: String::from_utf8_lossy(&output.stderr).into_owned(),
        took: started.elapsed(),
    }
}

#[test]
fn lock_fd_is_refused_unless_it_holds_the_projects_lock() {
    let p = project_with_a_secret();
    // A cleanup takes the lock once, which leaves the lock file behind.
    p.xtask(&["cleanup"]).assert_ok();
    let hint = "the option is for the monitor that `start-bg` starts, which hands it the lock it holds";
    for fd in ["0", "1", "2"] {
        p.xtask_within(&["__monitor", "--lock-fd", fd], LONG)
            .assert_code(2)
            .assert_contains(&format!(
                "--lock-fd {fd} refused: descriptors 0, 1 and 2 are standard input, output and error, never the lock; {hint}"
            ));
    }
    let lock = p.path(".xtask/lock");
    monitor_with_fd_5(&p, &p.path("services.toml"))
        .assert_code(2)
        .assert_contains(&format!(
            "--lock-fd 5 refused: it is not the lock file {}; {hint}",
            lock.display()
        ));
    monitor_with_fd_5(&p, &lock).assert_code(2).assert_contains(&format!(
        "--lock-fd 5 refused: it does not hold the lock on {}; {hint}",
        lock.display()
    ));
    p.assert_nothing_running();
    // The descriptor start-bg hands over is adopted as before.
    p.xtask(&["start-bg"]).assert_ok();
    p.xtask(&["stop"]).assert_ok();
}

/// `status --json`'s `leftovers`, as (pid, service, command).
fn json_leftovers(run: &Run) -> Vec<(i64, String, String)> {
    let json: serde_json::Value = serde_json::from_str(&run.stdout).unwrap_or_else(|e| panic!("{e}\n{run}"));
    json["leftovers"]
        .as_array()
        .unwrap_or_else(|| panic!("no `leftovers` array\n{run}"))
        .iter()
        .map(|l| {
            (
                l["pid"].as_i64().unwrap_or(0),
                l["service"].as_str().unwrap_or("?").to_string(),
                l["command"].as_str().unwrap_or("").to_string(),
            )
        })
        .collect()
}

#[test]
fn status_names_live_processes_of_the_project_that_no_record_names() {
    let p = project_with_a_secret();
    let hint = "1 leftover process(es) of this project run without a record; `cargo xtask cleanup` stops them";

    // A job the service queued, alive after the service stopped.
    let job = Bystander::with_cookie(&p, "api", "queued-job");
    let pid = job.pid();
    wait_for("the job to carry the cookie", LONG, || {
        p.cookie_holders().iter().any(|(h, _, _)| *h == pid)
    });
    p.xtask(&["status"])
        .assert_code(1)
        .assert_matches(&format!(
            r"(?m)^ api +stopped +- .*\n api +leftover +{pid} .* queued-job 1000"
        ))
        .assert_contains(hint);
    let json = p.xtask(&["status", "--json"]);
    json.assert_code(1);
    assert_eq!(
        json_leftovers(&json),
        [(i64::from(pid), "api".to_string(), "queued-job 1000".to_string())]
    );
    p.xtask(&["cleanup"]).assert_ok();
    assert!(!is_alive(pid), "cleanup left the job running");
    drop(job);

    // A service whose record was lost, with no monitor left to write it again.
    p.xtask(&["start-bg"]).assert_ok();
    let api = p.pid_of("api");
    let monitor = p.monitor_pid().expect("the monitor");
    kill(Pid::from_raw(monitor), Signal::SIGKILL).expect("kill the monitor");
    wait_for("the monitor to die", LONG, || !is_alive(monitor));
    for file in ["run/api.json", "run/api.pid", "monitor.json"] {
        std::fs::remove_file(p.path(&format!(".xtask/{file}"))).expect("lose a record");
    }
    let status = p.xtask(&["status"]);
    status
        .assert_code(1)
        .assert_matches(&format!(r"(?m)^ api +leftover +{api} "))
        .assert_contains(hint);
    let json = p.xtask(&["status", "--json"]);
    json.assert_code(1);
    let leftovers = json_leftovers(&json);
    assert!(
        leftovers.len() == 1 && leftovers[0].0 == i64::from(api) && leftovers[0].1 == "api",
        "expected the service's process as the one leftover\n{json}"
    );
    p.xtask(&["cleanup"]).assert_ok();
    let json = p.xtask(&["status", "--json"]);
    json.assert_code(3);
    assert!(json_leftovers(&json).is_empty(), "{json}");
    p.assert_nothing_running();
}

/// What a start is building or spawning before it records it belongs to that start:
/// no leftover while the start holds the lock.
#[test]
fn a_build_in_progress_is_no_leftover() {
    let fx = fixture();
    let p = Project::new(&format!("[services.api]\nbuild = \"sleep 3\"\ncommand = [\"{fx}\"]\n"));
    let start = p.spawn_quietly(&["start-bg"]);
    wait_for("the build to run", LONG, || {
        p.cookie_holders()
            .iter()
            .any(|(_, service, command)| service == "api" && command.contains("sleep 3"))
    });
    let json = p.xtask(&["status", "--json"]);
    assert!(
        json_leftovers(&json).is_empty(),
        "a build was taken for a leftover\n{json}"
    );
    let mut start = start;
    let status = start.wait().expect("start-bg ends");
    assert!(status.success(), "start-bg failed: {status}");
    p.xtask(&["status"]).assert_ok();
    p.xtask(&["stop"]).assert_ok();
}

/// `state_dir` in a shared place (a directory every user may write, as /tmp), where
/// another user made the state directory first, open to all, with the service's log
/// in it: the start refuses, naming the owner, and writes nothing there (the secret
/// would be that user's to read). The state directory of a checkout that another user
/// owns, in that user's own directory, stays usable (root stopping a developer's
/// stack, a container running as root over a mounted checkout).
#[test]
fn a_state_directory_another_user_made_in_a_shared_place_is_refused() {
    let (p, shared, toml) = state_in_a_shared_place();
    let intruder = crate::runtime_dir::Intruder::new();
    let state = shared.join("state");
    intruder.run(&format!(
        "mkdir -m 777 '{0}' '{0}/run' '{0}/logs' && touch '{0}/logs/api.log' && chmod 666 '{0}/logs/api.log'",
        state.display()
    ));
    let start = p.xtask(&["start-bg"]);
    assert_ne!(start.code, Some(0), "{start}");
    start.assert_contains(&format!("belongs to uid {}", intruder.uid()));
    let log = std::fs::read_to_string(state.join("logs/api.log")).expect("read the planted log");
    assert_eq!(log, "", "the start wrote into another user's log");
    p.assert_nothing_running();
    // Nothing ran, and nothing of ours was left behind in that user's directory.
    let entries: Vec<PathBuf> = tree(&state);
    assert!(
        entries
            .iter()
            .all(|e| std::fs::symlink_metadata(e).is_ok_and(|m| m.uid() == intruder.uid())),
        "xtask made files in another user's directory: {entries:?}"
    );
    p.xtask(&["stop"]).assert_ok();
    std::fs::remove_dir_all(&state).expect("remove the intruder's directory");

    // A checkout of another user, in that user's own directory: used as it is.
    let theirs = p.path("theirs");
    std::fs::create_dir(&theirs).expect("mkdir theirs");
    nix::unistd::chown(&theirs, Some(nix::unistd::Uid::from_raw(intruder.uid())), None).expect("chown");
    intruder.run(&format!("mkdir -m 700 '{}/state'", theirs.display()));
    p.write(
        "services.toml",
        &toml.replace("[project]\n", "[project]\nstate_dir = \"theirs/state\"\n"),
    );
    p.xtask(&["start-bg"]).assert_ok();
    p.xtask(&["stop"]).assert_ok();
    p.assert_nothing_running();
}

/// Another user's state directory in a shared place whose `run/` is a link to a
/// directory of yours, and whose `logs/` is a link to another: `stop`, `cleanup` and
/// `status` remove nothing there, write nothing through the links, and take no record
/// there for yours: a forged one naming a process of yours (by its PID and start time,
/// which anyone can read) gets it signalled by nobody.
#[test]
fn links_planted_in_another_users_state_directory_are_never_followed() {
    let (p, shared, _) = state_in_a_shared_place();
    // Files of yours, where the links lead.
    let victim = p.path("victim");
    let victim_logs = p.path("victim-logs");
    for (dir, files) in [
        (&victim, &["api.json", "api.pid", "notes.json"][..]),
        (&victim_logs, &["api.log"]),
    ] {
        std::fs::create_dir(dir).expect("mkdir victim");
        for file in files {
            std::fs::write(dir.join(file), "yours\n").expect("write a file of yours");
        }
    }
    // A process of yours that the forged record names.
    let bystander = Bystander::sleep();
    let forged = format!(
        "{{\"version\":2,\"service\":\"api\",\"pid\":{0},\"pgid\":{0},\"start_time\":{1},\"command\":\"x\",\"started_at_ms\":0,\"restarts\":0,\"state\":\"healthy\",\"log\":\"/dev/null\",\"ports\":[]}}",
        bystander.pid(),
        start_time(bystander.pid())
    );
    std::fs::write(victim.join("api.json"), &forged).expect("write the forged record");
    std::fs::write(victim.join("api.pid"), format!("{}\n", bystander.pid())).expect("write the pid");
    let before: Vec<(PathBuf, String)> = [&victim, &victim_logs]
        .iter()
        .flat_map(|d| tree(d))
        .filter(|f| f.is_file())
        .map(|f| {
            let text = std::fs::read_to_string(&f).unwrap_or_default();
            (f, text)
        })
        .collect();

    let intruder = crate::runtime_dir::Intruder::new();
    let state = shared.join("state");
    intruder.run(&format!(
        "mkdir -m 777 '{0}' && ln -s '{1}' '{0}/run' && ln -s '{2}' '{0}/logs'",
        state.display(),
        victim.display(),
        victim_logs.display()
    ));
    for args in [
        &["status"][..],
        &["stop"],
        &["stop", "--force"],
        &["cleanup"],
        &["status", "--json"],
    ] {
        let run = p.xtask(args);
        assert!(!run.output().contains("panicked"), "{run}");
        assert!(
            is_alive(bystander.pid()),
            "`{args:?}` signalled the process a forged record names:\n{run}"
        );
    }
    let after: Vec<(PathBuf, String)> = before
        .iter()
        .map(|(f, _)| {
            (
                f.clone(),
                std::fs::read_to_string(f).unwrap_or_else(|_| "<gone>".into()),
            )
        })
        .collect();
    assert_eq!(after, before, "files of yours changed through the planted links");
    let extra: Vec<PathBuf> = [&victim, &victim_logs]
        .iter()
        .flat_map(|d| tree(d))
        .filter(|f| f.is_file() && !before.iter().any(|(b, _)| b == f))
        .collect();
    assert!(extra.is_empty(), "files written through the planted links: {extra:?}");
    std::fs::remove_dir_all(&state).expect("remove the intruder's directory");
}
