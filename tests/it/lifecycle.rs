//! start-bg, status, logs and stop of real fixture services.

use std::time::Duration;

use crate::harness::{Project, fixture, free_ports, is_alive, session_of, wait_for};

/// a (port) <- b (http) <- c (command): one service per kind of health check.
fn chain() -> (Project, [u16; 2]) {
    let [pa, pb] = free_ports();
    let fx = fixture();
    let project = Project::new(&format!(
        r#"
[services.c]
command = ["{fx}", "--append", "order.txt", "--log", "c ready"]
depends_on = ["b"]
health = {{ command = "grep -q 'c started' order.txt", interval = "50ms" }}

[services.b]
command = "exec {fx} --port {pb} --append order.txt"
depends_on = ["a"]
health = {{ http = "http://127.0.0.1:{pb}/health", interval = "50ms" }}

[services.a]
command = ["{fx}", "--port", "{pa}", "--append", "order.txt", "--startup-delay", "100"]
port = {pa}
"#
    ));
    (project, [pa, pb])
}

#[test]
fn start_bg_status_and_stop_a_three_level_chain() {
    let (p, [pa, pb]) = chain();
    let start = p.xtask(&["start-bg"]);
    start.assert_ok().assert_contains("3 service(s) up in");
    for service in ["a", "b", "c"] {
        start.assert_matches(&format!(r"✓ {service}  pid \d+  healthy in \d+(ms|\.\d+s)"));
    }

    let status = p.xtask(&["status", "--json"]);
    status.assert_ok();
    let status_json: serde_json::Value = serde_json::from_str(&status.stdout).expect("status --json is JSON");
    let rows = status_json["services"].as_array().expect("an array of services");
    assert_eq!(rows.len(), 3, "{status}");
    for row in rows {
        assert_eq!(row["state"], "running", "{status}");
        assert_eq!(row["health"], "healthy", "{status}");
        assert!(row["pid"].as_i64().is_some_and(|pid| is_alive(pid as i32)), "{status}");
    }
    p.xtask(&["status"])
        .assert_ok()
        .assert_matches(r"(?m)^ a +running +\d+ ");

    let stop = p.xtask(&["stop"]);
    stop.assert_ok();
    for k in 1..=5 {
        stop.assert_contains(&format!("[{k}/5]"));
    }
    stop.assert_contains("[4/5] containers: none configured")
        .assert_contains("no process of this project is left");
    p.assert_nothing_running();
    for port in [pa, pb] {
        assert!(
            std::net::TcpListener::bind(("127.0.0.1", port)).is_ok(),
            "port {port} still taken after stop"
        );
    }
    p.xtask(&["status"]).assert_code(3).assert_matches(r"(?m)^ a +stopped");
}

#[test]
fn start_order_follows_dependencies_and_stop_reverses_it() {
    let (p, _) = chain();
    p.xtask(&["start-bg"]).assert_ok();
    let order = std::fs::read_to_string(p.path("order.txt")).expect("order file");
    assert_eq!(order, "a started\nb started\nc started\n");
    let stop = p.xtask(&["stop"]);
    stop.assert_ok()
        .assert_contains("[1/5] graceful stop: c (SIGTERM), b (SIGTERM), a (SIGTERM); all exited");
}

#[test]
fn starting_one_service_starts_its_dependencies_only_and_leaves_running_ones_alone() {
    let (p, _) = chain();
    p.xtask(&["start-bg", "b"])
        .assert_ok()
        .assert_contains("2 service(s) up");
    p.xtask(&["status", "c"]).assert_code(3);
    let again = p.xtask(&["start-bg", "c"]);
    again
        .assert_ok()
        .assert_matches(r"✓ a is already running \(pid \d+\), left alone");
    again.assert_contains("1 service(s) up");
    p.xtask(&["start-bg"])
        .assert_ok()
        .assert_contains("all 3 services already running");
}

#[test]
fn stopping_a_service_stops_its_dependents_first_and_nothing_else() {
    let [pa, pb] = free_ports();
    let fx = fixture();
    let p = Project::new(&format!(
        r#"
[services.db]
command = ["{fx}", "--port", "{pa}"]
port = {pa}

[services.api]
command = ["{fx}"]
depends_on = ["db"]

[services.other]
command = ["{fx}", "--port", "{pb}"]
port = {pb}
"#
    ));
    p.xtask(&["start-bg"]).assert_ok();
    let stop = p.xtask(&["stop", "db"]);
    stop.assert_ok()
        .assert_contains("graceful stop: api (SIGTERM), db (SIGTERM)");
    let services: Vec<String> = p.service_processes().into_iter().map(|(_, s, _)| s).collect();
    assert_eq!(services, vec!["other".to_string()], "{stop}");
    p.xtask(&["status"]).assert_code(1);
}

#[test]
fn a_service_that_never_becomes_healthy_is_explained_and_rolled_back() {
    let [pa, pb] = free_ports();
    let fx = fixture();
    let p = Project::new(&format!(
        r#"
[services.db]
command = ["{fx}", "--port", "{pa}"]
port = {pa}

[services.api]
command = ["{fx}", "--log", "api: still warming up"]
depends_on = ["db"]
health = {{ port = {pb}, interval = "100ms", retries = 5 }}
"#
    ));
    let start = p.xtask(&["start-bg"]);
    start
        .assert_code(1)
        .assert_matches(&format!(
            r"✗ service `api` did not become healthy within \d+ms: 127\.0\.0\.1:{pb}: Connection refused"
        ))
        .assert_contains("api: still warming up")
        .assert_contains("stopping what this run started: db, api")
        .assert_contains("[5/5] verify: no process of this project alive")
        .assert_contains("error: service `api` did not become healthy");
    p.assert_nothing_running();
    p.xtask(&["status"]).assert_code(3);
}

#[test]
fn a_service_that_exits_during_startup_fails_the_start_with_its_code() {
    let [port] = free_ports();
    let fx = fixture();
    let p = Project::new(&format!(
        r#"
[services.crash]
command = ["{fx}", "--log", "cannot open database", "--exit-after", "20", "--exit-code", "3"]
health = {{ port = {port} }}
"#
    ));
    p.xtask(&["start-bg"])
        .assert_code(1)
        .assert_contains("✗ service `crash` exited during startup (exit code 3)")
        .assert_contains("cannot open database");
    p.assert_nothing_running();
}

/// A service that ignores SIGTERM, with the given grace period and extra fixture flag.
fn stubborn(stop_timeout: &str, extra: &str) -> Project {
    let fx = fixture();
    let extra = if extra.is_empty() {
        String::new()
    } else {
        format!(", \"{extra}\"")
    };
    // Healthy once it says so, which it does after it ignores SIGTERM: a stop that came
    // sooner would end it with its first signal.
    Project::new(&format!(
        "[services.stubborn]\ncommand = [\"{fx}\", \"--ignore-sigterm\", \"--log\", \"ready\"{extra}]\nstop_timeout = \"{stop_timeout}\"\nhealth = {{ log = \"ready\" }}\n"
    ))
}

#[test]
fn a_service_that_ignores_sigterm_is_killed_after_its_stop_timeout() {
    let p = stubborn("1500ms", "--spawn-child");
    p.xtask(&["start-bg"]).assert_ok();
    wait_for("the child to start", Duration::from_secs(5), || {
        p.service_processes().len() == 2
    });
    let stop = p.xtask(&["stop"]);
    stop.assert_ok()
        .assert_contains("graceful stop: stubborn (SIGTERM); still running after the grace period: stubborn")
        .assert_matches(
            r"! stubborn is still running after 1\.\d+s; kept alive by:\n    │ pid \d+: .*fixture --ignore-sigterm",
        )
        .assert_matches(r"\[2/5\] force kill: SIGKILL to stubborn \(\d+(, \d+)?\)");
    assert!(
        stop.took >= Duration::from_millis(1500),
        "stopped before the grace period ended\n{stop}"
    );
    p.assert_nothing_running();
}

#[test]
fn stop_force_skips_the_grace_period() {
    let p = stubborn("1m", "");
    p.xtask(&["start-bg"]).assert_ok();
    p.xtask(&["stop", "--force"])
        .assert_ok()
        .assert_contains("[1/5] graceful stop: skipped (--force)");
    p.assert_nothing_running();
}

#[test]
fn stop_timeout_flag_overrides_the_configured_grace_period() {
    let p = stubborn("1m", "");
    p.xtask(&["start-bg"]).assert_ok();
    let stop = p.xtask(&["stop", "--timeout", "200ms"]);
    stop.assert_ok()
        .assert_contains("still running after the grace period: stubborn");
    assert!(
        stop.took < Duration::from_secs(30),
        "the 1m grace period was not overridden\n{stop}"
    );
    p.assert_nothing_running();
}

#[test]
fn ctrl_c_during_start_bg_stops_what_it_started() {
    let [port] = free_ports();
    let fx = fixture();
    let p = Project::new(&format!(
        "[services.slow]\ncommand = [\"{fx}\", \"--port\", \"{port}\", \"--startup-delay\", \"60000\"]\nport = {port}\n"
    ));
    let child = p
        .command(&["start-bg"])
        .stdout(std::process::Stdio::piped())
        .spawn()
        .expect("start-bg");
    wait_for("the service to start", Duration::from_secs(10), || {
        !p.service_processes().is_empty()
    });
    let pid = nix::unistd::Pid::from_raw(child.id() as i32);
    nix::sys::signal::kill(pid, nix::sys::signal::Signal::SIGINT).expect("send SIGINT to start-bg");
    let out = child.wait_with_output().expect("start-bg ends");
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert_eq!(out.status.code(), Some(130), "{stdout}");
    assert!(stdout.contains("stopping what this run started: slow"), "{stdout}");
    p.assert_nothing_running();
}

#[test]
fn a_grandchild_that_calls_setsid_and_double_forks_is_found_and_stopped() {
    let fx = fixture();
    let p = Project::new(&format!(
        r#"
[services.daemonizer]
command = ["{fx}", "--spawn-daemon"]
"#
    ));
    p.xtask(&["start-bg"]).assert_ok();
    let mut daemon = None;
    wait_for("the daemon's pid in the log", Duration::from_secs(5), || {
        daemon = p
            .log("daemonizer")
            .lines()
            .find_map(|l| l.strip_prefix("daemon pid ")?.trim().parse::<i32>().ok());
        daemon.is_some()
    });
    let daemon = daemon.expect("daemon pid");
    let leader = p
        .cookie_holders()
        .into_iter()
        .map(|(pid, _, _)| pid)
        .find(|pid| *pid != daemon)
        .expect("leader");
    assert!(is_alive(daemon));
    assert_ne!(
        session_of(daemon),
        session_of(leader),
        "the daemon should have left the service's session"
    );
    p.xtask(&["stop"]).assert_ok();
    assert!(!is_alive(daemon), "the setsid grandchild survived the stop");
    p.assert_nothing_running();
}

#[test]
fn logs_prints_the_tail_of_a_service_log() {
    let fx = fixture();
    let p = Project::new(&format!(
        r#"
[services.talker]
command = ["{fx}", "--log", "one", "--log", "two", "--log", "three"]
"#
    ));
    p.xtask(&["start-bg"]).assert_ok();
    wait_for("three log lines", Duration::from_secs(5), || {
        p.log("talker").lines().count() >= 3
    });
    let logs = p.xtask(&["logs", "talker", "-n", "2"]);
    logs.assert_ok();
    assert_eq!(logs.stdout, "two\nthree\n", "{logs}");
    p.xtask(&["logs", "nope"])
        .assert_code(2)
        .assert_contains("no service `nope`");
}

#[test]
fn cleanup_finds_leftovers_of_a_lost_run_by_their_cookie() {
    let fx = fixture();
    let p = Project::new(&format!(
        r#"
[services.worker]
command = ["{fx}", "--spawn-daemon"]
"#
    ));
    p.xtask(&["start-bg"]).assert_ok();
    // The daemon has run, and the middle process that forked it is gone: two left.
    wait_for("leader and daemon", Duration::from_secs(5), || {
        p.log("worker").contains("daemon grandchild running") && p.service_processes().len() == 2
    });
    // The run is lost: its monitor crashed (a live one writes removed records again)
    // and its records went with it.
    let monitor = p.monitor_pid().expect("the monitor");
    nix::sys::signal::kill(nix::unistd::Pid::from_raw(monitor), nix::sys::signal::Signal::SIGKILL)
        .expect("kill the monitor");
    wait_for("the monitor to be gone", Duration::from_secs(5), || {
        p.monitor_pid().is_none()
    });
    std::fs::remove_dir_all(p.path(".xtask/run")).expect("remove run dir");

    p.xtask(&["check"])
        .assert_code(1)
        .assert_contains("leftover processes of this project are running");
    let dry = p.xtask(&["cleanup", "--dry-run"]);
    dry.assert_ok().assert_contains("dry run: 2 leftover process(es)");
    assert_eq!(p.service_processes().len(), 2, "a dry run stopped something\n{dry}");

    p.xtask(&["cleanup"])
        .assert_ok()
        .assert_contains("[3/5] orphan sweep: stopped 2 leftover process(es)");
    assert!(
        p.service_processes().is_empty(),
        "cleanup left {:?}",
        p.service_processes()
    );
}

/// Services are spawned as session leaders with stdin from /dev/null, in their `cwd`,
/// and with signals at their default actions: xtask (a Rust program) ignores SIGPIPE,
/// and a service that inherited that would not die writing to a closed pipe.
#[test]
fn a_service_leads_its_own_session_in_its_cwd_with_default_signals() {
    let p = Project::new(
        "[services.a]\ncwd = \"sub\"\ncommand = \"echo sid $(cut -d' ' -f6 /proc/$$/stat) pid $$; pwd; readlink /proc/$$/fd/0; grep SigIgn /proc/$$/status; exec sleep 30\"\n",
    );
    std::fs::create_dir_all(p.path("sub")).expect("create sub");
    p.xtask(&["start-bg"]).assert_ok();
    let log = p.read_lines(".xtask/logs/a.log", 4);
    let lines: Vec<&str> = log.lines().collect();
    let words: Vec<&str> = lines[0].split_whitespace().collect();
    assert_eq!(words[1], words[3], "not a session leader: {log}");
    assert_eq!(
        lines[1],
        p.path("sub").canonicalize().expect("sub").display().to_string(),
        "{log}"
    );
    assert_eq!(lines[2], "/dev/null", "{log}");
    let ignored = u64::from_str_radix(lines[3].trim_start_matches("SigIgn:").trim(), 16).expect("SigIgn mask");
    assert_eq!(ignored & (1 << (13 - 1)), 0, "SIGPIPE is ignored: {log}");
    p.xtask(&["stop"]).assert_ok();
}

/// Service `a` on a port, whose main thread ends once it listens (`--main-thread-exits`).
fn main_thread_exiting_service() -> (Project, u16) {
    let [port] = free_ports();
    let fx = fixture();
    let p = Project::new(&format!(
        "[services.a]\ncommand = [\"{fx}\", \"--port\", \"{port}\", \"--main-thread-exits\"]\nport = {port}\n"
    ));
    (p, port)
}

#[track_caller]
fn assert_port_free(port: u16, after: &str) {
    assert!(
        std::net::TcpListener::bind(("127.0.0.1", port)).is_ok(),
        "port {port} still held after the {after}"
    );
}

/// /proc shows a process whose main thread ended as a zombie, while its other threads
/// still serve: it must count as running, and a stop must wait for all its threads.
#[test]
fn a_service_whose_main_thread_ended_still_runs_until_stopped() {
    let (p, port) = main_thread_exiting_service();
    p.xtask(&["start-bg"]).assert_ok();
    p.read_lines(".xtask/logs/a.log", 2);
    // The service's own row, not the monitor's line.
    p.xtask(&["status"])
        .assert_ok()
        .assert_matches(r"(?m)^\s*a\s+running\s");
    p.xtask(&["stop"])
        .assert_ok()
        .assert_contains("stopped a")
        .assert_contains("no process of this project is left");
    assert_port_free(port, "stop");
    p.assert_nothing_running();
}

/// The cookie scan reads the environment of such a process from one of its live
/// threads: with its record lost, `cleanup` still finds and stops it.
#[test]
fn cleanup_finds_by_its_cookie_a_leftover_whose_main_thread_ended() {
    let (p, port) = main_thread_exiting_service();
    p.xtask(&["start-bg", "--no-monitor"]).assert_ok();
    p.read_lines(".xtask/logs/a.log", 2);
    std::fs::remove_dir_all(p.path(".xtask/run")).expect("lose the records");
    p.xtask(&["cleanup"])
        .assert_ok()
        .assert_contains("leftover (of a)")
        .assert_contains("stopped 1 leftover process(es)");
    assert_port_free(port, "cleanup");
    p.assert_nothing_running();
}

/// A stop of some services says what it stopped and what still runs: "no process of
/// this project is left" would be untrue while the rest of the stack runs.
#[test]
fn a_scoped_stop_says_what_still_runs() {
    let fx = fixture();
    let p = Project::new(&format!(
        "[services.db]\ncommand = [\"{fx}\"]\n\n[services.api]\ncommand = [\"{fx}\"]\ndepends_on = [\"db\"]\n\n[services.cache]\ncommand = [\"{fx}\"]\n"
    ));
    p.xtask(&["start-bg"]).assert_ok();
    let run = p.xtask(&["stop", "db"]);
    run.assert_ok()
        .assert_contains("stopped api, db in")
        .assert_contains("none of their processes is left; still running: cache");
    assert!(!run.stdout.contains("no process of this project is left"), "{run}");
    p.xtask(&["stop", "cache"])
        .assert_ok()
        .assert_contains("nothing else of this project runs");
}

/// `status` counts a log's lines from where its last count stopped (a 100 MB log was
/// read whole on every call), and starts over when the log was truncated or replaced.
#[test]
fn status_counts_log_lines_incrementally_and_starts_over_after_a_truncation() {
    let p = Project::new("[services.api]\ncommand = [\"true\"]\n");
    let lines = |p: &Project| -> u64 {
        let run = p.xtask(&["status", "--json"]);
        let json: serde_json::Value = serde_json::from_str(&run.stdout).expect("json");
        json["services"][0]["log_lines"].as_u64().expect("log_lines")
    };
    p.write(".xtask/logs/api.log", "one\ntwo\nthree\n");
    assert_eq!(lines(&p), 3);
    assert!(p.path(".xtask/logs/.api.log.lines").exists(), "no count kept");
    let mut log = std::fs::OpenOptions::new()
        .append(true)
        .open(p.path(".xtask/logs/api.log"))
        .expect("log");
    std::io::Write::write_all(&mut log, b"four\nfive\n").expect("append");
    assert_eq!(lines(&p), 5);
    p.write(".xtask/logs/api.log", "after truncation\n");
    assert_eq!(lines(&p), 1);
}

/// Each start marks the log (`── start … ──`); a failed start quotes only what that
/// start wrote, never an earlier run's lines, and always what a command that died at
/// once said.
#[test]
fn a_failed_start_quotes_only_its_own_run_of_the_log() {
    let [port] = free_ports();
    let p = Project::new(&format!(
        "[services.cache]\ncommand = \"true && memcachedd --port {port}\"\nhealth = {{ port = {port} }}\n"
    ));
    p.write(".xtask/logs/cache.log", "old line from an earlier run\n");
    let run = p.xtask(&["start-bg"]);
    run.assert_code(1).assert_contains("memcachedd: not found");
    assert!(!run.stdout.contains("old line from an earlier run"), "{run}");
    let raw = std::fs::read_to_string(p.path(".xtask/logs/cache.log")).expect("log");
    assert!(
        raw.lines()
            .any(|l| l.starts_with("── start ") && l.ends_with(" UTC ──")),
        "no start marker:\n{raw}"
    );
    p.assert_nothing_running();
}
