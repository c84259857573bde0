//! Supervision: restart policies, liveness, dependency conditions, log readiness, the
//! detached monitor, the foreground `start`, and `restart`.

use std::process::Stdio;
use std::time::Duration;

use nix::sys::signal::{Signal, kill};
use nix::unistd::Pid;

use crate::harness::{Project, fixture, free_ports, is_alive, wait_for};

const LONG: Duration = Duration::from_secs(20);

/// Waits until the monitor's log contains `text`; on timeout, shows the log.
#[track_caller]
fn wait_for_monitor_log(p: &Project, text: &str) {
    let deadline = std::time::Instant::now() + LONG;
    let mut seen = false;
    wait_for(
        &format!("{text:?} in the monitor log"),
        LONG + Duration::from_secs(1),
        || {
            seen = p.monitor_log().contains(text);
            seen || std::time::Instant::now() >= deadline
        },
    );
    assert!(seen, "{text:?} never appeared in the monitor log:\n{}", p.monitor_log());
}

/// The `state` of one service in `status --json`.
fn state_of(p: &Project, service: &str) -> String {
    let run = p.xtask(&["status", "--json", service]);
    let json: serde_json::Value = serde_json::from_str(&run.stdout).unwrap_or_default();
    json["services"][0]["state"].as_str().unwrap_or("?").to_string()
}

#[test]
fn a_crash_is_restarted_with_growing_delays_until_max_restarts() {
    let [port] = free_ports();
    let fx = fixture();
    let p = Project::new(&format!(
        r#"
[services.crashy]
command = ["{fx}", "--port", "{port}", "--exit-after", "300", "--exit-code", "1"]
port = {port}
restart = "on-failure"
max_restarts = 2
restart_delay = "100ms"
"#
    ));
    p.xtask(&["start-bg"]).assert_ok();
    wait_for_monitor_log(&p, "gave up after 2 restart(s)");
    let log = p.monitor_log();
    for expected in [
        "crashy: exited (exit code 1); restarting in 100ms (attempt 1 of 2)",
        "crashy: exited (exit code 1); restarting in 200ms (attempt 2 of 2)",
        "crashy: exited (exit code 1); gave up after 2 restart(s); last: exit code 1",
    ] {
        assert!(
            log.contains(expected),
            "missing {expected:?} in the monitor log:\n{log}"
        );
    }
    assert_eq!(state_of(&p, "crashy"), "failed");
    p.xtask(&["status"])
        .assert_code(3)
        .assert_matches(r"(?m)^ crashy +failed \(exit code 1\) +- .* 2 +\d+ ");
}

#[test]
fn always_restarts_a_clean_exit_and_on_failure_does_not() {
    let fx = fixture();
    let p = Project::new(&format!(
        r#"
[services.always]
command = ["{fx}", "--exit-after", "300", "--exit-code", "0"]
restart = "always"
max_restarts = 1
restart_delay = "50ms"

[services.onfailure]
command = ["{fx}", "--exit-after", "300", "--exit-code", "0"]
restart = "on-failure"
"#
    ));
    p.xtask(&["start-bg"]).assert_ok();
    wait_for_monitor_log(&p, "always: exited (exit code 0); restarting in 50ms (attempt 1 of 1)");
    wait_for_monitor_log(
        &p,
        "onfailure: exited (exit code 0); not restarted (restart = \"on-failure\")",
    );
    wait_for_monitor_log(&p, "always: exited (exit code 0); gave up after 1 restart(s)");
}

/// A started service whose health check passes while the file `alive` exists.
fn alive_while_flagged(extra: &str) -> Project {
    let fx = fixture();
    let p = Project::new(&format!(
        "[services.web]\ncommand = [\"{fx}\"]\nhealth = {{ command = \"test -f alive\", interval = \"100ms\", retries = 2 }}\n{extra}\n"
    ));
    p.write("alive", "");
    p.xtask(&["start-bg"]).assert_ok();
    p
}

#[test]
fn a_failing_liveness_probe_restarts_the_service() {
    let p = alive_while_flagged("restart = \"always\"\nrestart_delay = \"50ms\"");
    let first = p.pid_of("web");
    std::fs::remove_file(p.path("alive")).expect("remove the health flag");
    wait_for_monitor_log(
        &p,
        "web: unhealthy: `test -f alive` failed (exit status: 1); taking it down",
    );
    p.write("alive", "");
    wait_for_monitor_log(&p, "web: healthy after");
    assert!(!is_alive(first), "the unhealthy process was not taken down");
    let second = p.pid_of("web");
    assert!(
        second != first && is_alive(second),
        "no new process after the liveness failure"
    );
    assert_eq!(state_of(&p, "web"), "running");
}

#[test]
fn a_failing_liveness_probe_under_restart_no_marks_the_service_unhealthy() {
    let p = alive_while_flagged("");
    std::fs::remove_file(p.path("alive")).expect("remove the health flag");
    wait_for_monitor_log(
        &p,
        "web: unhealthy: `test -f alive` failed (exit status: 1) (restart = \"no\": left running)",
    );
    let status = p.xtask(&["status", "--json"]);
    let json: serde_json::Value = serde_json::from_str(&status.stdout).expect("json");
    assert_eq!(json["services"][0]["health"], "unhealthy", "{status}");
    p.write("alive", "");
    wait_for_monitor_log(&p, "web: healthy again");
}

#[test]
fn readiness_from_a_log_line_written_since_the_start() {
    let [port] = free_ports();
    let fx = fixture();
    let p = Project::new(&format!(
        r#"
[services.api]
command = ["{fx}", "--port", "{port}", "--startup-delay", "200"]
health = {{ log = "listening on port \\d+", interval = "50ms" }}
"#
    ));
    p.xtask(&["start-bg"])
        .assert_ok()
        .assert_contains("waiting for a log line matching /listening on port \\d+/")
        .assert_matches(r"✓ api  pid \d+  healthy in \d+");
    assert!(p.log("api").contains(&format!("api listening on port {port}")));
}

#[test]
fn a_log_line_from_an_earlier_run_does_not_count() {
    let fx = fixture();
    let p = Project::new(&format!(
        r#"
[services.api]
command = ["{fx}"]
health = {{ log = "ready", interval = "50ms", retries = 4 }}
"#
    ));
    p.write(".xtask/logs/api.log", "ready\n");
    p.xtask(&["start-bg"])
        .assert_code(1)
        .assert_contains("did not become healthy within")
        .assert_contains("no log line matches /ready/ yet");
}

#[test]
fn a_completed_dependency_gates_its_dependents() {
    let fx = fixture();
    let p = Project::new(&format!(
        r#"
[services.migrate]
command = ["{fx}", "--append", "order.txt", "--exit-after", "200"]

[services.api]
command = ["{fx}", "--append", "order.txt"]
depends_on = {{ migrate = "completed" }}
"#
    ));
    p.xtask(&["start-bg"])
        .assert_ok()
        .assert_contains("started migrate")
        .assert_matches(r"✓ migrate  pid \d+  completed in");
    let order = p.read_lines("order.txt", 3);
    assert_eq!(order, "migrate started\nmigrate exited\napi started\n");
    assert_eq!(state_of(&p, "migrate"), "completed");
    p.xtask(&["status"])
        .assert_ok()
        .assert_matches(r"(?m)^ migrate +completed ");
    // A completed job is not run again by the next start.
    p.xtask(&["start-bg"])
        .assert_ok()
        .assert_contains("migrate completed earlier, left alone");
}

#[test]
fn a_failing_completed_dependency_blocks_its_dependents_with_a_clear_error() {
    let fx = fixture();
    let p = Project::new(&format!(
        r#"
[services.migrate]
command = ["{fx}", "--log", "relation users already exists", "--exit-after", "50", "--exit-code", "3"]

[services.api]
command = ["{fx}", "--append", "order.txt"]
depends_on = {{ migrate = "completed" }}
"#
    ));
    p.xtask(&["start-bg"])
        .assert_code(1)
        .assert_contains("✗ service `migrate` exited during startup (exit code 3)")
        .assert_contains("relation users already exists");
    assert!(!p.path("order.txt").exists(), "a dependent of a failed job was started");
    p.assert_nothing_running();
}

/// One service on a port, restarted 50 ms after a failure.
fn api_restarted_on_failure() -> Project {
    let [port] = free_ports();
    let fx = fixture();
    Project::new(&format!(
        r#"
[services.api]
command = ["{fx}", "--port", "{port}"]
port = {port}
restart = "on-failure"
restart_delay = "50ms"
"#
    ))
}

#[test]
fn sigkill_to_the_monitor_leaves_services_running_and_a_new_start_bg_adopts_them() {
    let p = api_restarted_on_failure();
    p.xtask(&["start-bg"]).assert_ok();
    let api = p.pid_of("api");
    let monitor = p.monitor_pid().expect("a monitor");
    kill(Pid::from_raw(monitor), Signal::SIGKILL).expect("kill the monitor");
    wait_for("the monitor to die", LONG, || !is_alive(monitor));
    assert!(is_alive(api), "the service died with its monitor");
    p.xtask(&["status"]).assert_ok().assert_contains("monitor: not running");

    p.xtask(&["start-bg"])
        .assert_ok()
        .assert_contains(&format!("api is already running (pid {api}), left alone"));
    assert_eq!(p.pid_of("api"), api, "a new start-bg started the service twice");
    assert!(p.monitor_pid().is_some_and(|m| m != monitor), "no new monitor");
    p.xtask(&["status"])
        .assert_ok()
        .assert_matches(r"monitor: running \(pid \d+\)");

    // The new monitor supervises the adopted service: a crash is restarted.
    kill(Pid::from_raw(api), Signal::SIGKILL).expect("kill the service");
    wait_for_monitor_log(
        &p,
        "api: exited (exit status unknown); restarting in 50ms (attempt 1 of 5)",
    );
    wait_for_monitor_log(&p, "api: healthy after");
    p.xtask(&["stop"])
        .assert_ok()
        .assert_matches(r"stopped the monitor \(pid \d+\)");
    p.assert_nothing_running();
}

#[test]
fn stop_and_cleanup_work_without_a_monitor() {
    let fx = fixture();
    let p = Project::new(&format!("[services.api]\ncommand = [\"{fx}\", \"--spawn-daemon\"]\n"));
    p.xtask(&["start-bg"]).assert_ok();
    let monitor = p.monitor_pid().expect("a monitor");
    kill(Pid::from_raw(monitor), Signal::SIGKILL).expect("kill the monitor");
    wait_for("the monitor to die", LONG, || !is_alive(monitor));
    p.xtask(&["stop"]).assert_ok();
    p.assert_nothing_running();
}

#[test]
fn no_zombie_appears_under_the_monitor() {
    let fx = fixture();
    let p = Project::new(&format!(
        "[services.parent]\ncommand = [\"{fx}\", \"--orphan-exit-after\", \"1000\"]\n"
    ));
    p.xtask(&["start-bg"]).assert_ok();
    let monitor = p.monitor_pid().expect("a monitor");
    let mut orphan = None;
    wait_for("the orphan's pid in the log, and its re-parenting", LONG, || {
        let log = p.log("parent");
        orphan = log
            .lines()
            .find_map(|l| l.strip_prefix("orphan pid ")?.trim().parse::<i32>().ok());
        orphan.is_some() && log.contains("orphan stage exited")
    });
    let orphan = orphan.expect("orphan pid");
    assert_eq!(
        parent_of(orphan),
        Some(monitor),
        "the orphan was not re-parented to the monitor"
    );
    // The orphan is re-parented to the monitor (a subreaper), exits, and is reaped:
    // its /proc entry disappears instead of lingering as a zombie.
    wait_for("the orphan to be reaped", LONG, || {
        !std::path::Path::new(&format!("/proc/{orphan}")).exists()
    });
    let zombies = zombie_children(monitor);
    assert!(zombies.is_empty(), "zombies under the monitor: {zombies:?}");
}

fn parent_of(pid: i32) -> Option<i32> {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    stat.rsplit_once(')')?.1.split_whitespace().nth(1)?.parse().ok()
}

/// Children of `parent` in state Z.
fn zombie_children(parent: i32) -> Vec<i32> {
    let mut found = Vec::new();
    for entry in std::fs::read_dir("/proc").into_iter().flatten().flatten() {
        let Ok(pid) = entry.file_name().to_string_lossy().parse::<i32>() else {
            continue;
        };
        let Ok(stat) = std::fs::read_to_string(entry.path().join("stat")) else {
            continue;
        };
        let Some((_, rest)) = stat.rsplit_once(')') else {
            continue;
        };
        let fields: Vec<&str> = rest.split_whitespace().collect();
        if fields.first() == Some(&"Z") && fields.get(1).and_then(|p| p.parse::<i32>().ok()) == Some(parent) {
            found.push(pid);
        }
    }
    found
}

#[test]
fn ctrl_c_on_a_foreground_start_stops_everything() {
    let [port] = free_ports();
    let fx = fixture();
    let p = Project::new(&format!(
        r#"
[services.db]
command = ["{fx}", "--port", "{port}", "--log", "db says hello"]
port = {port}

[services.api]
command = ["{fx}", "--spawn-daemon", "--log", "api says hello"]
depends_on = ["db"]
"#
    ));
    let child = p.command(&["start"]).stdout(Stdio::piped()).spawn().expect("start");
    wait_for("both services up", LONG, || {
        p.service_processes().len() == 3 && p.log("api").contains("daemon pid")
    });
    wait_for("the healthy record", LONG, || state_of(&p, "api") == "running");
    kill(Pid::from_raw(child.id() as i32), Signal::SIGINT).expect("Ctrl+C");
    let out = child.wait_with_output().expect("start ends");
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert_eq!(out.status.code(), Some(0), "{stdout}");
    for expected in [
        "db  | db says hello",
        "api | api says hello",
        "stopping (Ctrl+C again to force)",
        "[5/5] verify",
    ] {
        assert!(stdout.contains(expected), "missing {expected:?} in:\n{stdout}");
    }
    p.assert_nothing_running();
}

/// The stream goes on while a foreground start stops: a service's last words, written
/// in its SIGTERM handler, are shown, not only in its log.
#[test]
fn ctrl_c_shows_what_the_services_print_as_they_stop() {
    let fx = fixture();
    let p = Project::new(&format!(
        "[services.db]\ncommand = [\"{fx}\", \"--log\", \"db up\", \"--on-sigterm\", \"db: got SIGTERM, bye\"]\n\n\
         [services.api]\ncommand = [\"{fx}\", \"--on-sigterm\", \"api: bye\"]\ndepends_on = [\"db\"]\n"
    ));
    let child = p.command(&["start"]).stdout(Stdio::piped()).spawn().expect("start");
    wait_for("both services up", LONG, || {
        state_of(&p, "api") == "running" && p.log("db").contains("db up")
    });
    kill(Pid::from_raw(child.id() as i32), Signal::SIGINT).expect("Ctrl+C");
    let out = child.wait_with_output().expect("start ends");
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert_eq!(out.status.code(), Some(0), "{stdout}");
    for expected in ["db  | db: got SIGTERM, bye", "api | api: bye"] {
        assert!(stdout.contains(expected), "missing {expected:?} in:\n{stdout}");
    }
    p.assert_nothing_running();
}

/// A second Ctrl+C forces every level still waiting, and says so once.
#[test]
fn a_second_ctrl_c_says_forcing_once() {
    let fx = fixture();
    let p = Project::new(&format!(
        "[services.db]\ncommand = [\"{fx}\", \"--ignore-sigterm\"]\nstop_timeout = \"30s\"\n\n\
         [services.api]\ncommand = [\"{fx}\", \"--ignore-sigterm\"]\nstop_timeout = \"30s\"\ndepends_on = [\"db\"]\n"
    ));
    let child = p.command(&["start"]).stdout(Stdio::piped()).spawn().expect("start");
    wait_for("both services up", LONG, || state_of(&p, "api") == "running");
    let pid = Pid::from_raw(child.id() as i32);
    kill(pid, Signal::SIGINT).expect("Ctrl+C");
    wait_for("api to be stopping", LONG, || state_of(&p, "api") == "stopping");
    kill(pid, Signal::SIGINT).expect("Ctrl+C again");
    let out = child.wait_with_output().expect("start ends");
    let all = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    assert_eq!(all.matches("interrupted again: forcing").count(), 1, "{all}");
    p.assert_nothing_running();
}

#[test]
fn a_foreground_start_shows_restarts_and_exits_non_zero_for_a_service_that_failed_for_good() {
    let fx = fixture();
    let p = Project::new(&format!(
        r#"
[services.flaky]
command = ["{fx}", "--exit-after", "300", "--exit-code", "2"]
restart = "on-failure"
max_restarts = 1
restart_delay = "50ms"
"#
    ));
    let out = p.command(&["start"]).stdout(Stdio::piped()).output().expect("start");
    let stdout = String::from_utf8_lossy(&out.stdout);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(1), "{stdout}{stderr}");
    assert!(
        stdout.contains("flaky ▸ exited (exit code 2); restarting in 50ms (attempt 1 of 1)"),
        "{stdout}"
    );
    assert!(stdout.contains("flaky ▸ started (pid "), "{stdout}");
    assert!(
        stdout.contains("flaky ▸ exited (exit code 2); gave up after 1 restart(s)"),
        "{stdout}"
    );
    assert!(
        stderr.contains("service `flaky` failed for good: gave up after 1 restart(s)"),
        "{stderr}"
    );
}

#[test]
fn restart_restarts_a_service_and_its_dependents_only() {
    let fx = fixture();
    let p = Project::new(&format!(
        r#"
[services.db]
command = ["{fx}"]

[services.api]
command = ["{fx}"]
depends_on = ["db"]

[services.web]
command = ["{fx}"]
depends_on = ["api"]

[services.other]
command = ["{fx}"]
"#
    ));
    p.xtask(&["start-bg"]).assert_ok();
    let before: Vec<i32> = ["db", "api", "web", "other"].iter().map(|s| p.pid_of(s)).collect();
    p.xtask(&["restart", "api"])
        .assert_ok()
        .assert_contains("graceful stop: web (SIGTERM), api (SIGTERM)");
    let after: Vec<i32> = ["db", "api", "web", "other"].iter().map(|s| p.pid_of(s)).collect();
    assert_eq!(after[0], before[0], "db was restarted");
    assert_eq!(after[3], before[3], "other was restarted");
    assert!(
        after[1] != before[1] && after[2] != before[2],
        "api and web were not restarted: {before:?} -> {after:?}"
    );
    p.xtask(&["status"]).assert_ok();
}

#[test]
fn stop_command_replaces_the_stop_signal() {
    let fx = fixture();
    let p = Project::new(&format!(
        r#"
[services.db]
command = ["{fx}", "--ignore-sigterm"]
stop_command = "touch stopped-by-command; kill -KILL $XTASK_PID"
stop_timeout = "30s"
"#
    ));
    p.xtask(&["start-bg"]).assert_ok();
    p.xtask(&["stop"])
        .assert_ok()
        .assert_contains("[1/5] graceful stop: db (stop_command); all exited")
        .assert_contains("[2/5] force kill: nothing left to kill");
    assert!(p.path("stopped-by-command").exists());
}

#[test]
fn startup_delay_is_announced_and_kept() {
    let fx = fixture();
    let p = Project::new(&format!(
        "[services.db]\ncommand = [\"{fx}\"]\n\n[services.api]\ncommand = [\"{fx}\"]\ndepends_on = [\"db\"]\nstartup_delay = \"300ms\"\n"
    ));
    let run = p.xtask(&["start-bg"]);
    run.assert_ok().assert_contains("api starts in 300ms");
    assert!(
        run.took >= Duration::from_millis(300),
        "the startup delay was not kept\n{run}"
    );
}

/// A service that dies after the start reported it healthy, before the monitor first
/// looks at it, is an exit like any other: reported with its status (the monitor is
/// its parent) and restarted by its policy. (The monitor pauses at a fault point while
/// the test kills the service.)
#[test]
fn a_service_that_dies_before_the_monitor_looks_is_reported_and_restarted() {
    let p = api_restarted_on_failure();
    let start = p
        .command(&["start-bg"])
        .env("XTASK_FAULT", "monitor-before-supervising")
        .output()
        .expect("run start-bg");
    assert_eq!(
        start.status.code(),
        Some(0),
        "{}",
        String::from_utf8_lossy(&start.stdout)
    );
    let marker = p.path(".xtask/fault-monitor-before-supervising");
    wait_for("the monitor to pause", LONG, || marker.exists());
    let api = p.pid_of("api");
    kill(Pid::from_raw(api), Signal::SIGKILL).expect("kill the service");
    wait_for("the service to die", LONG, || !is_alive(api));
    std::fs::remove_file(&marker).expect("let the monitor go on");
    wait_for_monitor_log(
        &p,
        "api: exited (killed by SIGKILL); restarting in 50ms (attempt 1 of 5)",
    );
    wait_for_monitor_log(&p, "api: healthy after");
    p.xtask(&["stop"]).assert_ok();
    p.assert_nothing_running();
}

#[test]
fn a_slow_probe_does_not_hold_up_another_services_restart() {
    let fx = fixture();
    // `slow`'s liveness probe takes two seconds once the file `slow` exists; it says
    // when it starts and when it is done.
    let p = Project::new(&format!(
        r#"
[services.slow]
command = ["{fx}"]
health = {{ command = "if test -f slow; then touch probe-started; sleep 2; touch probe-done; fi", interval = "100ms", timeout = "10s" }}

[services.crash]
command = ["{fx}"]
restart = "always"
restart_delay = "10ms"
"#
    ));
    p.xtask(&["start-bg"]).assert_ok();
    p.write("slow", "");
    wait_for("the slow probe to start", LONG, || p.path("probe-started").exists());
    let crash = p.pid_of("crash");
    kill(Pid::from_raw(crash), Signal::SIGKILL).expect("kill the service");
    wait_for_monitor_log(&p, "crash: exited (killed by SIGKILL); restarting in 10ms");
    wait_for("crash to run again", LONG, || {
        let pid = p.pid_of("crash");
        pid != crash && pid != 0 && is_alive(pid)
    });
    assert!(
        !p.path("probe-done").exists(),
        "the restart waited for the slow probe of another service:\n{}",
        p.monitor_log()
    );
}

#[test]
fn a_probe_command_that_times_out_is_killed_with_what_it_started() {
    let fx = fixture();
    // Each probe leaves a child behind and outlives its timeout; the start-up deadline
    // (300 x 100ms) is far beyond the wait below.
    let p = Project::new(&format!(
        r#"
[services.web]
command = ["{fx}"]
health = {{ command = "sleep 60 & echo $! >> probe-children; wait", interval = "100ms", timeout = "100ms", retries = 300 }}
"#
    ));
    let mut start = p.spawn_quietly(&["start-bg"]);
    let first = || {
        std::fs::read_to_string(p.path("probe-children"))
            .unwrap_or_default()
            .lines()
            .next()
            .and_then(|l| l.trim().parse::<i32>().ok())
    };
    wait_for("a probe to start a child", LONG, || first().is_some());
    let child = first().unwrap_or(0);
    wait_for(
        "the child of a timed-out probe to be killed with it",
        Duration::from_secs(10),
        || !is_alive(child),
    );
    kill(Pid::from_raw(start.id() as i32), Signal::SIGINT).expect("interrupt start-bg");
    let _ = start.wait();
}

/// A service that stayed up for its `restart_window` starts counting afresh when it
/// ends: with `max_restarts = 1` it is restarted again and again, never given up on.
#[test]
fn a_service_that_stayed_up_for_its_restart_window_counts_restarts_afresh() {
    let fx = fixture();
    let p = Project::new(&format!(
        r#"
[services.daily]
command = ["{fx}", "--exit-after", "400", "--exit-code", "1"]
restart = "on-failure"
max_restarts = 1
restart_delay = "10ms"
restart_window = "200ms"
"#
    ));
    p.xtask(&["start-bg"]).assert_ok();
    wait_for("three restarts, each the first of its window", LONG, || {
        p.monitor_log()
            .matches("daily: exited (exit code 1); restarting in 10ms (attempt 1 of 1)")
            .count()
            >= 3
    });
    assert!(!p.monitor_log().contains("gave up"), "{}", p.monitor_log());
    p.xtask(&["stop"]).assert_ok();
}

/// `max_restarts = "unlimited"` never gives up; `success_exit_codes` makes an exit
/// code a success, which `on-failure` does not restart and nothing reports as failed.
#[test]
fn unlimited_restarts_and_success_exit_codes() {
    let fx = fixture();
    let p = Project::new(&format!(
        r#"
[services.forever]
command = ["{fx}", "--exit-after", "5", "--exit-code", "1"]
restart = "always"
max_restarts = "unlimited"
restart_delay = "1ms"

[services.graceful]
command = ["{fx}", "--exit-after", "100", "--exit-code", "143"]
restart = "on-failure"
success_exit_codes = [0, 143]
"#
    ));
    p.xtask(&["start-bg"]).assert_ok();
    wait_for_monitor_log(&p, "forever: exited (exit code 1); restarting in 64ms (attempt 7)\n");
    wait_for_monitor_log(
        &p,
        "graceful: exited (exit code 143); not restarted (restart = \"on-failure\")",
    );
    assert_eq!(state_of(&p, "graceful"), "completed");
    p.xtask(&["stop"]).assert_ok();
    assert!(!p.monitor_log().contains("gave up"), "{}", p.monitor_log());
}

/// A foreground start with `--abort-on-failure` (or `abort_on_failure = true`) stops
/// everything and exits 1, naming the service, once one fails for good; without it,
/// it would supervise the rest until Ctrl+C.
#[test]
fn a_foreground_start_aborts_on_a_failure_when_asked() {
    let fx = fixture();
    let stack = format!(
        "[services.good]\ncommand = [\"{fx}\"]\n\n[services.bad]\ncommand = [\"{fx}\", \"--exit-after\", \"300\", \"--exit-code\", \"4\"]\n"
    );
    for (project, args) in [
        (String::new(), &["start", "--abort-on-failure"][..]),
        ("[project]\nabort_on_failure = true\n\n".to_string(), &["start"][..]),
    ] {
        let p = Project::new(&format!("{project}{stack}"));
        p.xtask_within(args, LONG)
            .assert_code(1)
            .assert_contains("`bad` failed for good; stopping everything")
            .assert_contains("service `bad` failed for good: exited (exit code 4)");
        p.assert_nothing_running();
    }
}

/// A healthy service is probed at `interval_healthy` when given: two services with the
/// same 20 ms `interval`, one of them probed every 10 s once healthy; while the first
/// takes thirty probes, the second takes a few (its start-up ones and one liveness).
#[test]
fn interval_healthy_slows_liveness_probes_only() {
    let fx = fixture();
    let [busy, calm] = free_ports();
    let p = Project::new(&format!(
        r#"
[services.busy]
command = ["{fx}", "--port", "{busy}", "--count-requests", "busy.txt"]
health = {{ http = "http://127.0.0.1:{busy}/health", interval = "20ms" }}

[services.calm]
command = ["{fx}", "--port", "{calm}", "--count-requests", "calm.txt"]
health = {{ http = "http://127.0.0.1:{calm}/health", interval = "20ms", interval_healthy = "10s" }}
"#
    ));
    p.xtask(&["start-bg"]).assert_ok();
    let count = |file: &str| {
        std::fs::read_to_string(p.path(file))
            .unwrap_or_default()
            .lines()
            .count()
    };
    wait_for("thirty probes of busy", LONG, || count("busy.txt") >= 30);
    assert!(count("calm.txt") <= 5, "calm was probed {} times", count("calm.txt"));
    p.xtask(&["stop"]).assert_ok();
}

/// A failed `start-bg NAME` is rolled back, but the monitor it started took over from
/// the one that supervised the rest of the stack: it stays, and supervises that.
#[test]
fn a_failed_start_bg_of_one_service_leaves_the_rest_supervised() {
    let fx = fixture();
    let p = Project::new(&format!(
        r#"
[services.worker]
command = ["{fx}"]
restart = "always"
restart_delay = "10ms"

[services.broken]
command = ["{fx}"]
health = {{ command = "false", interval = "20ms", retries = 2 }}
disabled = true
"#
    ));
    p.xtask(&["start-bg"]).assert_ok();
    let before = p.monitor_pid().expect("a monitor");
    p.xtask(&["start-bg", "broken"])
        .assert_code(1)
        .assert_contains("service `broken` did not become healthy");
    let monitor = p.monitor_pid().expect("a monitor still supervises the stack");
    assert_ne!(monitor, before, "the earlier monitor was not taken over");
    let first = p.pid_of("worker");
    kill(Pid::from_raw(first), Signal::SIGKILL).expect("kill the worker");
    p.wait_for_new_pid("worker", first);
    p.xtask(&["status"])
        .assert_contains("monitor: running")
        .assert_matches(r"worker +running");
}

/// `rm -rf .xtask`, which may meet a file made meanwhile (a relay writes logs there,
/// the supervisor records): done again until one pass removes it all.
fn remove_state_dir(p: &Project) {
    wait_for("the state directory removed", LONG, || {
        std::fs::remove_dir_all(p.path(".xtask")).is_ok()
    });
}

/// `rm -rf .xtask` (or `git clean -fdX`) while the stack runs is no stop: the supervisor
/// keeps its services, writes their records again (so that `status` and `stop` know
/// them), and goes on restarting them; in the foreground, Ctrl+C still stops them.
#[test]
fn records_removed_while_the_stack_runs_are_written_again() {
    let fx = fixture();
    let toml = format!("[services.worker]\ncommand = [\"{fx}\"]\nrestart = \"always\"\nrestart_delay = \"10ms\"\n");
    let running = |p: &Project| {
        let status = p.xtask(&["status"]);
        status.code == Some(0) && status.stdout.contains("worker") && status.stdout.contains("running")
    };

    let p = Project::new(&toml);
    p.xtask(&["start-bg"]).assert_ok();
    let first = p.pid_of("worker");
    remove_state_dir(&p);
    wait_for("the worker's record written again", LONG, || running(&p));
    assert_eq!(p.pid_of("worker"), first, "the worker was restarted, not kept");
    kill(Pid::from_raw(first), Signal::SIGKILL).expect("kill the worker");
    p.wait_for_new_pid("worker", first);
    drop(p);

    let p = Project::new(&toml);
    let start = p.start_in_the_foreground();
    let worker = p.pid_of("worker");
    remove_state_dir(&p);
    wait_for("the worker's record written again", LONG, || running(&p));
    kill(Pid::from_raw(start.id() as i32), Signal::SIGINT).expect("Ctrl+C");
    let out = start.wait_with_output().expect("start ends");
    assert!(out.status.success(), "the foreground start did not stop cleanly");
    assert!(!is_alive(worker), "Ctrl+C left the worker running");
}
