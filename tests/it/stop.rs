//! A paused service (stopped by SIGSTOP, or frozen in its cgroup) is woken by a stop,
//! so that it leaves through its own SIGTERM handler, at once.

use std::time::Duration;

use nix::sys::signal::{Signal, kill};
use nix::unistd::Pid;

use crate::harness::{Project, Run, fixture, wait_for};

const LONG: Duration = Duration::from_secs(20);
/// The grace period of the paused services: a stop that waited it out would take a
/// minute and end them by SIGKILL, their handlers never run.
const GRACE: &str = "1m";
/// Far less than `GRACE`, and far more than a stop of two services takes on a loaded
/// machine.
const PROMPT: Duration = Duration::from_secs(20);

/// Two services with a SIGTERM handler that prints a line and exits: `signalled` gets
/// its stop signal from xtask, `commanded` from its `stop_command`. Started, and each
/// with its handler in place.
fn with_handlers(cgroup: &str) -> Project {
    let fx = fixture();
    let service = |name: &str| {
        format!(
            "[services.{name}]\ncommand = [\"{fx}\", \"--on-sigterm\", \"{name}: handled SIGTERM\", \"--log\", \"{name}: ready\"]\nstop_timeout = \"{GRACE}\"\n"
        )
    };
    let p = Project::new(&format!(
        "{}{}stop_command = \"kill -TERM $XTASK_PID\"\n",
        service("signalled"),
        service("commanded")
    ))
    .with_env("XTASK_CGROUP", cgroup);
    p.xtask(&["start-bg"]).assert_ok();
    // A service without a health check counts as up once spawned: paused before the
    // fixture installs its handler (it prints its lines after), SIGTERM would kill it.
    for name in ["signalled", "commanded"] {
        wait_for(&format!("{name} to be ready"), LONG, || {
            p.log(name).contains(&format!("{name}: ready"))
        });
    }
    p
}

/// The state of a process (field 3 of /proc/PID/stat): `T` when stopped.
fn state_of(pid: i32) -> Option<char> {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    stat.rsplit_once(')')?.1.split_whitespace().next()?.chars().next()
}

/// Asserts that the stop ended both services through their handlers, without waiting
/// out their grace period, and that nothing is left.
#[track_caller]
fn assert_left_through_their_handlers(p: &Project, stop: &Run, how: &str) {
    stop.assert_ok()
        .assert_contains(&format!(
            "[1/5] graceful stop: signalled (SIGTERM{how}), commanded (stop_command{how}); all exited"
        ))
        .assert_contains("[2/5] force kill: nothing left to kill");
    assert!(
        stop.took < PROMPT,
        "the stop waited for the grace period of a paused service\n{stop}"
    );
    for service in ["signalled", "commanded"] {
        wait_for(&format!("{service}'s handler's line in its log"), LONG, || {
            p.log(service).contains(&format!("{service}: handled SIGTERM"))
        });
    }
    p.assert_nothing_running();
}

/// A service stopped by SIGSTOP (Ctrl+Z, a debugger) holds a caught SIGTERM pending
/// until it is continued: the stop continues it (SIGCONT) right after the stop signal,
/// and before a `stop_command`, whose own signal must find it running.
#[test]
fn a_service_stopped_by_sigstop_leaves_through_its_handler_in_both_modes() {
    for (mode, cgroup) in [("cgroup", "1"), ("tree", "0")] {
        let p = with_handlers(cgroup);
        for service in ["signalled", "commanded"] {
            let pid = p.pid_of(service);
            kill(Pid::from_raw(pid), Signal::SIGSTOP).expect("SIGSTOP the service");
            wait_for(&format!("{mode}: {service} to be stopped"), LONG, || {
                state_of(pid) == Some('T')
            });
        }
        let stop = p.xtask(&["stop"]);
        assert_left_through_their_handlers(&p, &stop, "");
    }
}

/// A frozen cgroup (`cgroup.freeze`) runs no handler until thawed: the stop thaws it.
#[test]
fn a_service_in_a_frozen_cgroup_is_thawed_and_leaves_through_its_handler() {
    let p = with_handlers("1");
    for service in ["signalled", "commanded"] {
        let record: serde_json::Value = serde_json::from_str(
            &std::fs::read_to_string(p.path(&format!(".xtask/run/{service}.json"))).expect("the record"),
        )
        .expect("a JSON record");
        let Some(cgroup) = record["cgroup"].as_str().map(std::path::PathBuf::from) else {
            panic!(
                "{service} runs in no cgroup: this test needs a writable cgroup2 hierarchy (run the suite as root, as CI does)\n{record}"
            );
        };
        std::fs::write(cgroup.join("cgroup.freeze"), "1").expect("freeze the service's cgroup");
        wait_for(&format!("{service}'s cgroup to be frozen"), LONG, || {
            std::fs::read_to_string(cgroup.join("cgroup.events")).is_ok_and(|e| e.lines().any(|l| l == "frozen 1"))
        });
    }
    let stop = p.xtask(&["stop"]);
    assert_left_through_their_handlers(&p, &stop, ", cgroup thawed");
}
