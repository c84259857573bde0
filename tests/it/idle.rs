//! Idle costs nothing: for each shape of service that teams write, the supervisor of a
//! stack that runs and does nothing uses less than 50 ms of CPU over 2 s, both the
//! detached monitor of `start-bg` and a foreground `start`. (The suite runs twice, with
//! cgroups and with `XTASK_CGROUP=0`, so each shape is measured in both modes.)

use std::time::Duration;

use nix::sys::signal::{Signal, kill};
use nix::unistd::Pid;

use crate::harness::{Project, cpu_used_by_a_live_one, cpu_used_over, fixture, free_ports, team_stack, wait_for};

const WINDOW: Duration = Duration::from_secs(2);
const BUDGET: Duration = Duration::from_millis(50);
const LONG: Duration = Duration::from_secs(30);

/// Starts the stack of `toml` (with `setup` run on the project first) detached, then in
/// the foreground, and holds each supervisor to the budget over the window.
pub fn assert_idle(shape: &str, toml: &str, setup: &dyn Fn(&Project)) {
    assert_idle_of(shape, &|| {
        let p = Project::new(toml);
        setup(&p);
        p
    });
}

/// The same for the projects `make` makes, one for each supervisor.
pub fn assert_idle_of(shape: &str, make: &dyn Fn() -> Project) {
    let p = make();
    p.xtask(&["start-bg"]).assert_ok();
    let monitor = p.monitor_pid().expect("a monitor supervises the stack");
    let Some(used) = cpu_used_by_a_live_one(monitor, WINDOW) else {
        panic!(
            "{shape}: the monitor (pid {monitor}) ended while idle\n{}\n{}",
            p.monitor_log(),
            p.xtask(&["status"])
        );
    };
    assert!(
        used < BUDGET,
        "{shape}: the idle monitor used {used:?} of CPU in {WINDOW:?} (budget {BUDGET:?})\n{}",
        p.monitor_log()
    );
    drop(p);

    let p = make();
    let start = p.start_in_the_foreground();
    let pid = start.id() as i32;
    let used = cpu_used_over(pid, WINDOW);
    kill(Pid::from_raw(pid), Signal::SIGINT).expect("Ctrl+C the foreground start");
    let ended = wait_child(start);
    assert!(
        used < BUDGET,
        "{shape}: the idle foreground start used {used:?} of CPU in {WINDOW:?} (budget {BUDGET:?})"
    );
    assert_eq!(ended, Some(0), "{shape}: the foreground start did not stop cleanly");
}

/// Waits for a child xtask with a deadline; its exit code.
fn wait_child(mut child: std::process::Child) -> Option<i32> {
    let mut code = None;
    wait_for("the foreground start to end", LONG, || match child.try_wait() {
        Ok(Some(status)) => {
            code = status.code();
            true
        }
        _ => false,
    });
    code
}

fn nothing(_: &Project) {}

#[test]
fn a_worker_without_a_probe() {
    let fx = fixture();
    assert_idle(
        "no probe",
        &format!("[services.worker]\ncommand = [\"{fx}\"]\n\n[services.sleeper]\ncommand = \"exec sleep 1000\"\n"),
        &nothing,
    );
}

#[test]
fn a_log_probe() {
    let fx = fixture();
    assert_idle(
        "log probe",
        &format!("[services.logged]\ncommand = [\"{fx}\", \"--log\", \"ready\"]\nhealth = {{ log = \"ready\" }}\n"),
        &nothing,
    );
}

#[test]
fn a_command_probe() {
    let fx = fixture();
    assert_idle(
        "command probe",
        &format!("[services.checked]\ncommand = [\"{fx}\"]\nhealth = {{ command = \"true\" }}\n"),
        &nothing,
    );
}

#[test]
fn a_port_and_an_http_probe() {
    let fx = fixture();
    let [a, b] = free_ports();
    assert_idle(
        "port and http probes",
        &format!(
            "[services.tcp]\ncommand = [\"{fx}\", \"--port\", \"{a}\"]\nport = {a}\n\n\
             [services.web]\ncommand = [\"{fx}\", \"--port\", \"{b}\"]\nport = {b}\nhealth = {{ http = \"http://127.0.0.1:{b}/health\" }}\n"
        ),
        &nothing,
    );
}

#[test]
fn a_python_worker_on_a_terminal() {
    assert_idle(
        "tty",
        "[services.worker]\ntty = true\ncommand = [\"python3\", \"worker.py\"]\n",
        &|p| p.write("worker.py", "import time\nprint('working')\ntime.sleep(1000)\n"),
    );
}

/// A service that watches its own sources and reads them all the time, as a dev
/// server that reloads does: reads are no changes, so nothing is built, and the
/// supervisor is not woken for them.
#[test]
fn a_watched_service_that_reads_its_sources() {
    assert_idle(
        "watch",
        "[project]\nwatch_debounce = \"50ms\"\n\n[services.dev]\nbuild = \"cat src/*.txt > /dev/null\"\nwatch = [\"src\"]\ncommand = \"while true; do cat src/*.txt > /dev/null; sleep 0.1; done\"\n",
        &|p| {
            p.write("src/a.txt", "a");
            p.write("src/b.txt", "b");
        },
    );
}

#[test]
fn replicas() {
    let fx = fixture();
    assert_idle(
        "replicas",
        &format!("[services.worker]\nreplicas = 3\ncommand = [\"{fx}\"]\n"),
        &nothing,
    );
}

#[test]
fn a_job_that_completed_and_its_dependent() {
    let fx = fixture();
    assert_idle(
        "completed job",
        &format!(
            "[services.migrate]\ncommand = \"echo migrated\"\n\n\
             [services.api]\ncommand = [\"{fx}\"]\ndepends_on = {{ migrate = \"completed\" }}\n"
        ),
        &nothing,
    );
}

/// The realistic stack: PostgreSQL and its initdb job, redis, a migration job, a
/// cargo-built API with `watch`, a Python worker on a terminal without a health check.
#[test]
fn the_team_stack() {
    assert_idle_of("team stack", &team_stack);
}

/// Sleeping until something is due must not sleep through what is due at once: a
/// service restarted without a health check is healthy as soon as it runs again.
#[test]
fn a_restart_without_a_health_check_is_healthy_at_once() {
    let fx = fixture();
    let p = Project::new(&format!(
        "[services.worker]\ncommand = [\"{fx}\"]\nrestart = \"always\"\nrestart_delay = \"10ms\"\n"
    ));
    p.xtask(&["start-bg"]).assert_ok();
    let first = p.pid_of("worker");
    kill(Pid::from_raw(first), Signal::SIGKILL).expect("kill the worker");
    p.wait_for_new_pid("worker", first);
    wait_for("the restarted worker healthy", LONG, || {
        p.monitor_log().contains("worker: healthy after")
    });
    let log = p.monitor_log();
    let line = log
        .lines()
        .find(|l| l.contains("worker: healthy after"))
        .unwrap_or_default();
    assert!(
        line.ends_with("ms"),
        "a restart without a health check waited to be seen: {line}\n{log}"
    );
}
