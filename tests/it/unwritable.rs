//! A state directory that cannot be written (a file system remounted read-only after an
//! error, a full disk) is exactly when a user wants everything stopped: `stop`, `stop
//! --force` and `cleanup` stop everything all the same, exit 0, and say once what they
//! could not record.

use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Duration;

use nix::sys::signal::{Signal, kill};
use nix::unistd::Pid;

use crate::harness::{Project, Run, fixture, free_ports, is_alive, wait_for};

const LONG: Duration = Duration::from_secs(20);

/// A file system mounted for the test, unmounted on drop, also when the test fails:
/// declared after the project, it is dropped before the project's guard, which then
/// stops and cleans up with a writable state directory again.
struct Mount {
    path: PathBuf,
}

impl Mount {
    /// A read-only bind mount of `path` over itself: what a file system remounted
    /// read-only after an error looks like to xtask, while the services, whose logs
    /// were opened before, run on.
    #[track_caller]
    fn read_only(path: &Path) -> Mount {
        let guard = Mount::new(path, &["--bind".as_ref(), path.as_os_str(), path.as_os_str()]);
        // The remount fails (EBUSY) while a file is open for writing through the new
        // mount: the monitor may be writing a record at that very moment.
        wait_for(
            &format!("a read-only remount of {}", path.display()),
            LONG,
            || match mount(&["-o".as_ref(), "remount,bind,ro".as_ref(), path.as_os_str()]) {
                Ok(()) => true,
                Err(err) => {
                    eprintln!("remount: {err}");
                    false
                }
            },
        );
        let probe = if path.is_dir() {
            std::fs::write(path.join("probe"), "")
        } else {
            std::fs::OpenOptions::new().append(true).open(path).map(drop)
        };
        assert_eq!(
            probe.map_err(|e| e.raw_os_error()),
            Err(Some(nix::libc::EROFS)),
            "{} is not read-only after the remount",
            path.display()
        );
        guard
    }

    /// A tmpfs of `size` on `path`, which the test then fills.
    #[track_caller]
    fn tmpfs(path: &Path, size: &str) -> Mount {
        std::fs::create_dir_all(path).expect("the mount point");
        let options = format!("size={size}");
        Mount::new(
            path,
            &[
                "-t".as_ref(),
                "tmpfs".as_ref(),
                "-o".as_ref(),
                options.as_ref(),
                "tmpfs".as_ref(),
                path.as_os_str(),
            ],
        )
    }

    #[track_caller]
    fn new(path: &Path, args: &[&std::ffi::OsStr]) -> Mount {
        assert!(
            nix::unistd::geteuid().is_root(),
            "this test mounts a file system on the state directory, which needs root: run the suite as root, as CI does"
        );
        mount(args).unwrap_or_else(|err| panic!("cannot mount on {}: {err}", path.display()));
        Mount {
            path: path.to_path_buf(),
        }
    }
}

/// `mount ARGS`; its error output when it fails.
fn mount(args: &[&std::ffi::OsStr]) -> Result<(), String> {
    let out = Command::new("mount").args(args).output().map_err(|e| e.to_string())?;
    if out.status.success() {
        Ok(())
    } else {
        Err(String::from_utf8_lossy(&out.stderr).trim().to_string())
    }
}

impl Drop for Mount {
    fn drop(&mut self) {
        let unmounted = |lazy: bool| {
            Command::new("umount")
                .args(lazy.then_some("--lazy"))
                .arg(&self.path)
                .status()
                .is_ok_and(|s| s.success())
        };
        // A lazy unmount detaches even a mount that something still has a file open on
        // (a relay still writing a log).
        if !unmounted(false) && !unmounted(true) && !std::thread::panicking() {
            panic!("could not unmount {}", self.path.display());
        }
    }
}

/// A running stack: `api` with a child process and a port, `web` (depending on it) with
/// a `stop_command`, and the monitor; all three service processes up.
fn running_stack() -> (Project, u16) {
    let fx = fixture();
    let [port] = free_ports::<1>();
    let p = Project::new(&format!(
        "[services.api]\ncommand = [\"{fx}\", \"--spawn-child\", \"--port\", \"{port}\"]\nport = {port}\n\n\
         [services.web]\ncommand = [\"{fx}\", \"--on-sigterm\", \"web: handled SIGTERM\"]\ndepends_on = [\"api\"]\n\
         stop_command = \"kill -TERM $XTASK_PID\"\n"
    ));
    p.xtask(&["start-bg"]).assert_ok();
    wait_for("api's child and web", LONG, || p.service_processes().len() == 3);
    let monitor = p.monitor_pid().expect("the monitor");
    // Once its client has gone, the monitor writes to monitor.log: opened after the
    // bind mount, the log would hold the mount writable (the remount would be refused).
    let log = p.path(".xtask/monitor.log");
    wait_for("the monitor's output to go to its log", LONG, || {
        std::fs::read_link(format!("/proc/{monitor}/fd/1")).is_ok_and(|target| target == log)
    });
    (p, port)
}

/// The stop exited 0, said once what it could not record (`unrecorded`, after the
/// directory), and nothing of the project is left: no process, not the monitor, and
/// the port is free.
#[track_caller]
fn assert_stopped_everything(p: &Project, run: &Run, port: u16, unrecorded: &str) {
    let warning = format!(
        "! the state directory {}/.xtask cannot be written (read-only file system): {unrecorded}\n",
        p.root.display()
    );
    run.assert_ok().assert_contains(&warning);
    assert_eq!(
        run.output().matches("cannot be written").count(),
        1,
        "more than one warning about the state directory\n{run}"
    );
    p.assert_nothing_running();
    assert!(
        std::net::TcpListener::bind(("127.0.0.1", port)).is_ok(),
        "port {port} is still held\n{run}"
    );
}

const STALE: &str = "(stale now: `cleanup` removes them once the directory can be written)";

#[test]
fn stop_on_a_read_only_state_directory_stops_everything() {
    let (p, port) = running_stack();
    let _read_only = Mount::read_only(&p.path(".xtask"));
    let stop = p.xtask(&["stop"]);
    stop.assert_contains("[1/5] graceful stop: web (stop_command), api (SIGTERM); all exited")
        .assert_contains("[5/5] verify: no process of this project alive; 2 record(s) could not be removed")
        .assert_contains("no process of this project is left");
    assert_stopped_everything(
        &p,
        &stop,
        port,
        &format!(
            "it still holds the records of api and web and the monitor's record {STALE}; the output of the `stop_command` of web was not logged"
        ),
    );
}

#[test]
fn stop_force_on_a_read_only_state_directory_stops_everything() {
    let (p, port) = running_stack();
    let _read_only = Mount::read_only(&p.path(".xtask"));
    let stop = p.xtask(&["stop", "--force"]);
    stop.assert_contains("[1/5] graceful stop: skipped (--force)")
        .assert_matches(r"\[2/5\] force kill: SIGKILL to api \(\d+, \d+\), web \(\d+\)")
        .assert_contains("no process of this project is left");
    assert_stopped_everything(
        &p,
        &stop,
        port,
        &format!("it still holds the records of api and web and the monitor's record {STALE}"),
    );
}

/// Without a lock file, and none can be created, nobody holds the lock and nobody can
/// take it (every other command creates the file): the stop goes on, and says so.
#[test]
fn stop_on_a_read_only_state_directory_without_a_lock_file_stops_everything() {
    let (p, port) = running_stack();
    // Without cgroups the monitor takes the lock each second (to record the services'
    // process trees), which makes the file again: mounted read-only without it, or again.
    let lock = p.path(".xtask/lock");
    let mut read_only = None;
    wait_for("a read-only state directory without a lock file", LONG, || {
        drop(read_only.take());
        let _ = std::fs::remove_file(&lock);
        read_only = Some(Mount::read_only(&p.path(".xtask")));
        !lock.exists()
    });
    let stop = p.xtask(&["stop"]);
    stop.assert_contains("no process of this project is left");
    assert_stopped_everything(
        &p,
        &stop,
        port,
        &format!(
            "it has no lock file and cannot get one, so this ran without the lock (no command that writes can take it meanwhile); it still holds the records of api and web and the monitor's record {STALE}; the output of the `stop_command` of web was not logged"
        ),
    );
}

/// `cleanup` after a crash: the monitor SIGKILLed, api's records lost (its processes
/// are leftovers, known by their cookie and cgroup), web's process gone (its record is
/// stale). On a read-only state directory it stops the leftovers and keeps the record.
#[test]
fn cleanup_on_a_read_only_state_directory_stops_every_leftover() {
    let (p, port) = running_stack();
    let monitor = p.monitor_pid().expect("the monitor");
    kill(Pid::from_raw(monitor), Signal::SIGKILL).expect("kill the monitor");
    wait_for("the monitor to die", LONG, || !is_alive(monitor));
    // Killed at any moment, the monitor may have been writing a record (without cgroups
    // it writes the process trees into them every few seconds): its temporary file is
    // a stale file of a dead writer, which `cleanup` reports too on a read-only
    // directory. This test is about web's record: the dead writer's files go first.
    let interrupted = format!(".tmp{monitor}");
    for dir in [".xtask", ".xtask/run"] {
        for entry in std::fs::read_dir(p.path(dir))
            .expect("read the state directory")
            .flatten()
        {
            if entry.file_name().to_string_lossy().ends_with(&interrupted) {
                std::fs::remove_file(entry.path()).expect("remove a dead writer's temporary file");
            }
        }
    }
    for file in [".xtask/run/api.json", ".xtask/run/api.pid"] {
        std::fs::remove_file(p.path(file)).expect("remove api's record");
    }
    let web = p.pid_of("web");
    kill(Pid::from_raw(web), Signal::SIGKILL).expect("kill web");
    wait_for("web to die", LONG, || !is_alive(web));
    let _read_only = Mount::read_only(&p.path(".xtask"));
    let cleanup = p.xtask(&["cleanup"]);
    cleanup
        .assert_contains("[3/5] orphan sweep: stopped 2 leftover process(es)")
        .assert_contains("[5/5] verify: removed 0 stale record(s); 1 could not be removed");
    assert_stopped_everything(
        &p,
        &cleanup,
        port,
        "it still holds the record of web (stale now: `cleanup` removes it once the directory can be written)",
    );
}

/// A full disk: the stop's writes fail (a record marked `stopping` while a service
/// ignores SIGTERM), its removals do not. Everything stops, and no temporary file of a
/// failed write is left behind.
#[test]
fn stop_on_a_full_state_directory_stops_everything() {
    let fx = fixture();
    let p = Project::new(&format!(
        "[services.api]\ncommand = [\"{fx}\", \"--spawn-child\"]\n\n\
         [services.stubborn]\ncommand = [\"{fx}\", \"--ignore-sigterm\", \"--log\", \"ready\"]\nhealth = {{ log = \"ready\" }}\n"
    ));
    let _full = Mount::tmpfs(&p.path(".xtask"), "1m");
    p.xtask(&["start-bg"]).assert_ok();
    wait_for("api's child and stubborn", LONG, || p.service_processes().len() == 3);
    let mut filler = std::fs::File::create(p.path(".xtask/filler")).expect("create the filler");
    let chunk = vec![0u8; 64 * 1024];
    while filler.write_all(&chunk).is_ok() {}
    // Alive past 100 ms of its grace period, stubborn's record is marked `stopping`.
    let stop = p.xtask(&["stop", "--timeout", "500ms"]);
    stop.assert_ok()
        .assert_contains("still running after the grace period: stubborn")
        .assert_contains("no process of this project is left");
    p.assert_nothing_running();
    let left: Vec<String> = std::fs::read_dir(p.path(".xtask/run"))
        .expect("the run directory")
        .flatten()
        .map(|e| e.file_name().to_string_lossy().into_owned())
        .collect();
    assert!(left.is_empty(), "files left in run/: {left:?}\n{stop}");
}

/// A supervisor that cannot take the lock (the lock file read-only) while a restart is
/// due waits with a doubling pause and says so once, instead of trying 100,000 times a
/// second and writing as many lines into its log; it restarts the service once it can.
#[test]
fn a_supervisor_that_cannot_take_the_lock_backs_off_and_says_so_once() {
    let fx = fixture();
    let p = Project::new(&format!(
        "[services.flaky]\ncommand = [\"{fx}\", \"--exit-after\", \"300\", \"--exit-code\", \"1\"]\nrestart = \"always\"\nrestart_delay = \"50ms\"\nmax_restarts = 1000\n"
    ));
    p.xtask(&["start-bg"]).assert_ok();
    let monitor = p.monitor_pid().expect("the monitor");
    let log = p.path(".xtask/monitor.log");
    wait_for("the monitor's output to go to its log", LONG, || {
        std::fs::read_link(format!("/proc/{monitor}/fd/1")).is_ok_and(|target| target == log)
    });
    let lock = Mount::read_only(&p.path(".xtask/lock"));
    let problem = "cannot take the state lock";
    wait_for("the monitor to meet the read-only lock", LONG, || {
        p.monitor_log().contains(problem)
    });
    let used = crate::harness::cpu_used_over(monitor, Duration::from_secs(2));
    assert!(
        used < Duration::from_millis(50),
        "the waiting monitor used {used:?} of CPU in 2 s"
    );
    assert_eq!(p.monitor_log().matches(problem).count(), 1, "{}", p.monitor_log());
    let before = p.pid_of("flaky");
    drop(lock);
    p.wait_for_new_pid("flaky", before);
    wait_for("the monitor to say it can write again", LONG, || {
        p.monitor_log().contains("the state directory can be written again")
    });
}
