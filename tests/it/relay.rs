//! A supervised log relay: when one is killed, the supervisor notices at once, `status`
//! names it, and a new relay writes the services' logs again, for a service on a pipe
//! and one on a terminal alike; neither service is disturbed.

use std::time::Duration;

use nix::sys::signal::{Signal, kill};
use nix::unistd::Pid;

use crate::harness::{Project, fixture, free_ports, is_alive, poll, wait_for};

const LONG: Duration = Duration::from_secs(20);

/// A shell loop on a pipe and a Python loop (no `-u`) on a terminal, each printing a
/// numbered line every 20 ms.
fn chatty() -> Project {
    Project::new(
        r#"
[services.pipe]
command = "n=0; while true; do n=$((n+1)); echo pipe $n; sleep 0.02; done"

[services.term]
tty = true
command = ["python3", "-c", "import time\nn = 0\nwhile True:\n    n += 1\n    print('term', n)\n    time.sleep(0.02)"]
"#,
    )
}

/// The relay recorded for `service`.
fn relay_of(p: &Project, service: &str) -> i32 {
    let text = std::fs::read_to_string(p.path(&format!(".xtask/run/{service}.json"))).unwrap_or_default();
    let record: serde_json::Value = serde_json::from_str(&text).unwrap_or_default();
    record["relay"][0].as_i64().unwrap_or(0) as i32
}

/// The last number `service` logged.
fn last_number(p: &Project, service: &str) -> u64 {
    p.log(service)
        .lines()
        .filter_map(|l| l.split_whitespace().nth(1)?.parse().ok())
        .next_back()
        .unwrap_or(0)
}

#[track_caller]
fn kill_relay_and_see_logging_resume(p: &Project, status_command: &[&str]) {
    let (pipe, term) = (p.pid_of("pipe"), p.pid_of("term"));
    wait_for("both services logging", LONG, || {
        last_number(p, "pipe") > 5 && last_number(p, "term") > 5
    });
    let relay = relay_of(p, "pipe");
    assert!(relay > 0 && relay == relay_of(p, "term"), "one relay serves the level");
    kill(Pid::from_raw(relay), Signal::SIGKILL).expect("kill -9 the relay");
    let killed = std::time::Instant::now();
    wait_for("status to name the relay", Duration::from_secs(2), || {
        let status = p.xtask(status_command);
        status.stdout.matches("log relay replaced").count() == 2
    });
    assert!(killed.elapsed() < Duration::from_secs(2));
    let (pipe_at, term_at) = (last_number(p, "pipe"), last_number(p, "term"));
    wait_for("new lines in both logs", LONG, || {
        last_number(p, "pipe") > pipe_at + 10 && last_number(p, "term") > term_at + 10
    });
    assert!(is_alive(pipe) && is_alive(term), "a service died with its relay");
    assert_eq!(
        (p.pid_of("pipe"), p.pid_of("term")),
        (pipe, term),
        "a service was restarted"
    );
    let status = p.xtask(&["status", "--json"]);
    let json: serde_json::Value = serde_json::from_str(&status.stdout).unwrap_or_default();
    for service in json["services"].as_array().into_iter().flatten() {
        assert_eq!(service["log_relay"]["state"], "replaced", "{status}");
    }
}

#[test]
fn a_killed_relay_is_named_and_replaced_under_the_monitor() {
    let p = chatty();
    p.xtask(&["start-bg"]).assert_ok();
    kill_relay_and_see_logging_resume(&p, &["status"]);
    assert!(
        p.monitor_log().contains("pipe: its log relay (pid"),
        "{}",
        p.monitor_log()
    );
}

#[test]
fn a_killed_relay_is_replaced_under_a_foreground_start() {
    let p = chatty();
    let start = p.start_in_the_foreground();
    kill_relay_and_see_logging_resume(&p, &["status"]);
    kill(Pid::from_raw(start.id() as i32), Signal::SIGINT).expect("Ctrl+C");
    let out = start.wait_with_output().expect("start ends");
    assert!(out.status.success(), "the foreground start did not stop cleanly");
}

/// A paused relay holds the last lines of its services and blocks their writes: a stop
/// wakes it, with `--force` too, so that it writes them and ends with them.
#[test]
fn a_stop_wakes_a_paused_relay() {
    for force in [false, true] {
        let p = chatty();
        p.xtask(&["start-bg"]).assert_ok();
        let relay = relay_of(&p, "pipe");
        wait_for("the relay to run", LONG, || relay > 0 && is_alive(relay));
        kill(Pid::from_raw(relay), Signal::SIGSTOP).expect("pause the relay");
        let args: &[&str] = if force { &["stop", "--force"] } else { &["stop"] };
        p.xtask(args).assert_ok();
        wait_for("the relay to end", LONG, || p.relays().is_empty());
    }
}

/// Continues a paused relay when dropped, so that a failing test leaves nothing stopped.
struct Paused(i32);

impl Drop for Paused {
    fn drop(&mut self) {
        let _ = kill(Pid::from_raw(self.0), Signal::SIGCONT);
    }
}

/// `start-bg` returns once the logs hold what the services printed before they became
/// healthy, so that `start-bg && grep … api.log` finds it: here the relay is paused
/// while the API prints its line and opens its port, and `start-bg` waits for it.
#[test]
fn start_bg_returns_once_the_logs_hold_what_came_before_healthy() {
    let fx = fixture();
    let [port] = free_ports::<1>();
    let p = Project::new(&format!(
        r#"
[services.api]
command = "while [ ! -e go ]; do sleep 0.01; done; echo 'api: before the port'; exec {fx} --port {port}"
port = {port}
"#
    ));
    let mut start = p.spawn_quietly(&["start-bg"]);
    wait_for("the relay to be recorded", LONG, || {
        let relay = relay_of(&p, "api");
        relay > 0 && is_alive(relay)
    });
    let relay = relay_of(&p, "api");
    kill(Pid::from_raw(relay), Signal::SIGSTOP).expect("pause the relay");
    let paused = Paused(relay);
    p.write("go", "");
    wait_for("the port to open", LONG, || {
        std::net::TcpStream::connect(("127.0.0.1", port)).is_ok()
    });
    let returned_while_paused = poll(Duration::from_millis(300), || start.try_wait().ok().flatten().is_some());
    drop(paused);
    let status = start.wait().expect("start-bg ends");
    let log = p.log("api");
    p.xtask(&["stop"]).assert_ok();
    assert!(status.success(), "start-bg failed: {status}");
    assert!(
        !returned_while_paused,
        "start-bg returned before the API's line was in its log"
    );
    assert!(log.contains("api: before the port"), "{log}");
}
