//! Programs that fork into the background without a `pid_file`: the service is followed
//! to its daemon whether its health check passed before or after the process xtask
//! started exited, with or without a monitor; and without cgroups, daemons forked in
//! the same start level are never taken for each other's.

use std::time::Duration;

use std::process::Command;

use crate::harness::{Project, fixture, free_ports, installed, poll, wait_for};
use crate::real_servers::{MODES, nginx_command, postgres_project, status_json};

/// The service `db`: `pg_ctl start` (which waits for the server, so the port answers
/// before it exits) with no `pid_file`.
fn pg_ctl_service(data: &str, port: u16) -> String {
    format!(
        "[services.db]\ncommand = [\"setpriv\", \"--reuid=postgres\", \"--regid=postgres\", \"--init-groups\", \"{}\", \"start\", \"-w\", \"-D\", \"{data}\", \"-l\", \"{data}/server.log\", \"-o\", \"-p {port} -k {data} -c listen_addresses=127.0.0.1\"]\n\
         port = {port}\nstop_signal = \"SIGINT\"\n",
        installed("pg_ctl")
    )
}

/// The PID PostgreSQL wrote on the first line of `postmaster.pid`.
fn postmaster(data: &str) -> Option<i64> {
    let text = std::fs::read_to_string(format!("{data}/postmaster.pid")).ok()?;
    text.lines().next()?.trim().parse().ok()
}

/// The row of `service` in `status --json`.
fn row(json: &serde_json::Value, service: &str) -> serde_json::Value {
    json["services"]
        .as_array()
        .and_then(|rows| rows.iter().find(|r| r["service"] == service))
        .cloned()
        .unwrap_or_else(|| panic!("no row for {service}: {json}"))
}

/// Starts `pg_ctl start` with `args`, then checks that `status` shows the postmaster
/// running (its PID, memory in use) and that `stop` leaves nothing.
fn pg_ctl_is_followed(args: &[&str]) {
    for (mode, switch) in MODES {
        let [port] = free_ports::<1>();
        let (p, data) = postgres_project(switch);
        p.write("services.toml", &pg_ctl_service(&data, port));
        p.xtask(args).assert_ok();
        let postmaster = postmaster(&data).expect("postmaster.pid");
        // pg_ctl may exit just after the start reported the service healthy.
        wait_for("status to name the postmaster", Duration::from_secs(10), || {
            row(&status_json(&p), "db")["pid"].as_i64() == Some(postmaster)
        });
        let json = status_json(&p);
        let db = row(&json, "db");
        assert_eq!(json["containment"], mode, "{json}");
        assert_eq!(db["state"], "running", "({mode}) {json}");
        assert!(
            db["rss_bytes"].as_u64().is_some_and(|rss| rss > 0),
            "({mode}) RSS: {json}"
        );
        p.xtask(&["stop"])
            .assert_ok()
            .assert_contains("no process of this project is left");
        let left = p.leftovers();
        assert!(left.is_empty(), "({mode}) left: {left:?}");
    }
}

#[test]
fn pg_ctl_start_without_a_pid_file_is_followed_by_the_monitor() {
    pg_ctl_is_followed(&["start-bg"]);
}

#[test]
fn pg_ctl_start_without_a_pid_file_is_followed_without_a_monitor() {
    pg_ctl_is_followed(&["start-bg", "--no-monitor"]);
}

/// The name of the program a PID runs, as the kernel knows it (a title rewrite leaves
/// `comm` alone for these servers).
fn program(pid: i64) -> String {
    std::fs::read_to_string(format!("/proc/{pid}/comm"))
        .map_or_else(|_| format!("no process {pid}"), |c| c.trim().to_string())
}

/// Four servers that fork into the background, none with a `pid_file`, in one start
/// level and without cgroups (redis, nginx and memcached fork and exit at once; `pg_ctl`
/// waits for its server): ten times, each record names its own program's process, and
/// `stop` leaves nothing.
#[test]
fn daemons_in_one_level_are_never_confused_without_cgroups() {
    daemons_in_one_level("0", Duration::from_secs(10));
}

/// The same with cgroups, where the services of a level spawn at once.
#[test]
fn daemons_in_one_level_are_never_confused_with_cgroups() {
    daemons_in_one_level("1", Duration::from_secs(10));
}

/// Starts and stops the four daemons ten times with `XTASK_CGROUP=switch`; after each
/// start, each record names its own program within `settle`, and no process of the
/// project is a leftover.
fn daemons_in_one_level(switch: &str, settle: Duration) {
    let [redis_port, nginx_port, memcached_port, db_port] = free_ports::<4>();
    let (p, data) = postgres_project(switch);
    let root = p.root.display().to_string();
    let nginx = nginx_command(&p, nginx_port, false);
    p.write(
        "services.toml",
        &format!(
            "[services.redis]\ncommand = [\"{}\", \"--port\", \"{redis_port}\", \"--bind\", \"127.0.0.1\", \"--save\", \"\", \"--appendonly\", \"no\", \"--dir\", \"{root}\", \"--daemonize\", \"yes\", \"--logfile\", \"{root}/redis.log\"]\n\
             port = {redis_port}\n\n\
             [services.nginx]\ncommand = {nginx}\nport = {nginx_port}\n\n\
             [services.memcached]\ncommand = [\"{}\", \"-d\", \"-u\", \"nobody\", \"-l\", \"127.0.0.1\", \"-p\", \"{memcached_port}\"]\nport = {memcached_port}\n\n{}",
            installed("redis-server"),
            installed("memcached"),
            pg_ctl_service(&data, db_port),
        ),
    );
    let expected_programs = [
        ("redis", "redis-server"),
        ("nginx", "nginx"),
        ("memcached", "memcached"),
        ("db", "postgres"),
    ];
    for round in 1..=10 {
        p.xtask(&["start-bg"]).assert_ok();
        for (service, expected) in expected_programs {
            let mut seen = (None, serde_json::Value::Null);
            let named = poll(settle, || {
                let json = status_json(&p);
                seen = (row(&json, service)["pid"].as_i64(), json);
                seen.0.is_some_and(|pid| program(pid) == expected)
            });
            if !named {
                let tree = Command::new("ps").args(["-eo", "pid,ppid,sid,lstart,comm"]).output();
                let tree = tree
                    .map(|o| String::from_utf8_lossy(&o.stdout).into_owned())
                    .unwrap_or_default();
                let _ = p.xtask(&["stop", "--force"]);
                panic!(
                    "round {round}: {service}'s record names {:?}, not {expected}: {}\n{tree}\n{}",
                    seen.0,
                    seen.1,
                    p.monitor_log()
                );
            }
        }
        let json = status_json(&p);
        for (service, _) in expected_programs {
            assert_eq!(row(&json, service)["state"], "running", "round {round}: {json}");
        }
        assert_eq!(json["leftovers"], serde_json::json!([]), "round {round}: {json}");
        p.xtask(&["stop"])
            .assert_ok()
            .assert_contains("no process of this project is left");
        let left = p.leftovers();
        assert!(left.is_empty(), "round {round}: left {left:?}");
    }
}

/// A server that answers on its port from its first process, then forks its daemon
/// away and exits (as nginx does): the probe passes before the fork. Beside it, a
/// service that takes a second to come up, so that the start ends after the fork.
fn late_forking_project(switch: &str) -> (Project, u16) {
    let [port, slow] = free_ports::<2>();
    let server = format!(
        "import os, socket, time\n\
         s = socket.socket(); s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)\n\
         s.bind(('127.0.0.1', {port})); s.listen(16)\n\
         time.sleep(0.3)\n\
         if os.fork():\n    os._exit(0)\n\
         os.setsid()\n\
         while True:\n    c, _ = s.accept(); c.close()\n"
    );
    let p = Project::new("").with_env("XTASK_CGROUP", switch);
    p.write("server.py", &server);
    p.write(
        "services.toml",
        &format!(
            "[services.web]\ncommand = [\"python3\", \"server.py\"]\nport = {port}\n\n\
             [services.slow]\ncommand = [\"{}\", \"--startup-delay\", \"1000\", \"--port\", \"{slow}\"]\nport = {slow}\n",
            fixture()
        ),
    );
    (p, port)
}

/// The late fork is recorded before `start-bg` returns, with and without a monitor and
/// in both modes: `status` right after names the daemon, running, and no leftover.
#[test]
fn a_daemon_forked_after_its_probe_passed_is_recorded_before_start_bg_returns() {
    for (mode, switch) in MODES {
        for args in [&["start-bg"][..], &["start-bg", "--no-monitor"]] {
            let (p, _port) = late_forking_project(switch);
            let start = p.xtask(args);
            start.assert_ok();
            let json = status_json(&p);
            let web = row(&json, "web");
            assert_eq!(web["state"], "running", "({mode}, {args:?}) {json}\n{start}");
            let pid = web["pid"].as_i64().unwrap_or_default();
            assert!(
                std::fs::read_to_string(format!("/proc/{pid}/stat")).is_ok_and(|s| !s.contains(") Z ")),
                "({mode}, {args:?}) web's record names pid {pid}, which is gone: {json}\n{start}"
            );
            assert_eq!(json["leftovers"], serde_json::json!([]), "({mode}, {args:?}) {json}");
            p.xtask(&["stop"])
                .assert_ok()
                .assert_contains("no process of this project is left");
        }
    }
}

/// Without cgroups, a service that keeps a `setsid` child and is not healthy holds the
/// fork window for its whole start-up budget, and the services of its level wait for
/// it. A `stop` still preempts that start at once: the waiting spawns give up, nothing
/// more starts, the start exits 130 and `stop` leaves nothing.
#[test]
fn stop_preempts_a_start_whose_spawns_wait_for_the_fork_window() {
    let [port] = free_ports::<1>();
    let p = Project::new(&format!(
        "[services.a]\ncommand = [\"python3\", \"a.py\"]\nhealth = {{ port = {port}, start_period = \"60s\" }}\n\n\
         [services.b]\ncommand = \"exec sleep 1001\"\n\n[services.c]\ncommand = \"exec sleep 1002\"\n\n\
         [services.d]\ncommand = \"exec sleep 1003\"\n"
    ))
    .with_env("XTASK_CGROUP", "0");
    p.write(
        "a.py",
        "import os, time\nif os.fork() == 0:\n    os.setsid()\n    time.sleep(1000)\n    os._exit(0)\ntime.sleep(1000)\n",
    );
    let mut start = p.spawn_quietly(&["start-bg"]);
    wait_for("a to be started", Duration::from_secs(20), || p.pid_of("a") != 0);
    let stop = p.xtask_within(&["stop"], Duration::from_secs(20));
    stop.assert_ok().assert_contains("no process of this project is left");
    assert!(stop.took < Duration::from_secs(5), "stop took {:?}\n{stop}", stop.took);
    let mut code = None;
    wait_for("the preempted start to end", Duration::from_secs(20), || {
        code = start.try_wait().expect("wait for the start");
        code.is_some()
    });
    assert_eq!(
        code.and_then(|c| c.code()),
        Some(130),
        "the start was not preempted\n{stop}"
    );
    p.assert_nothing_running();
}
