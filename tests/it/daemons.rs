//! Programs that fork into the background without a `pid_file`: the service is followed
//! to its daemon whether its health check passed before or after the process xtask
//! started exited, with or without a monitor; and without cgroups, daemons forked in
//! the same start level are never taken for each other's.

use std::time::Duration;

use crate::harness::{free_ports, installed, wait_for};
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

/// Three servers that fork into the background, none with a `pid_file`, in one start
/// level and without cgroups: ten times, each record names its own program's process,
/// and `stop` leaves nothing.
#[test]
fn three_daemons_in_one_level_are_never_confused_without_cgroups() {
    let [redis_port, nginx_port, db_port] = free_ports::<3>();
    let (p, data) = postgres_project("0");
    let root = p.root.display().to_string();
    let nginx = nginx_command(&p, nginx_port, false);
    let third = match which("memcached") {
        Some(memcached) => (
            "memcached",
            format!(
                "[services.third]\ncommand = [\"{memcached}\", \"-d\", \"-u\", \"nobody\", \"-l\", \"127.0.0.1\", \"-p\", \"{db_port}\"]\nport = {db_port}\n"
            ),
        ),
        None => (
            "postgres",
            pg_ctl_service(&data, db_port).replace("[services.db]", "[services.third]"),
        ),
    };
    p.write(
        "services.toml",
        &format!(
            "[services.redis]\ncommand = [\"{}\", \"--port\", \"{redis_port}\", \"--bind\", \"127.0.0.1\", \"--save\", \"\", \"--appendonly\", \"no\", \"--dir\", \"{root}\", \"--daemonize\", \"yes\", \"--logfile\", \"{root}/redis.log\"]\n\
             port = {redis_port}\n\n\
             [services.nginx]\ncommand = {nginx}\nport = {nginx_port}\n\n{}",
            installed("redis-server"),
            third.1
        ),
    );
    for round in 1..=10 {
        p.xtask(&["start-bg"]).assert_ok();
        for (service, expected) in [("redis", "redis-server"), ("nginx", "nginx"), ("third", third.0)] {
            wait_for(
                &format!("round {round}: {service}'s record to name {expected}"),
                Duration::from_secs(10),
                || {
                    let pid = row(&status_json(&p), service)["pid"].as_i64();
                    pid.is_some_and(|pid| program(pid) == expected)
                },
            );
        }
        let json = status_json(&p);
        for service in ["redis", "nginx", "third"] {
            assert_eq!(row(&json, service)["state"], "running", "round {round}: {json}");
        }
        p.xtask(&["stop"])
            .assert_ok()
            .assert_contains("no process of this project is left");
        let left = p.leftovers();
        assert!(left.is_empty(), "round {round}: left {left:?}");
    }
}

fn which(name: &str) -> Option<String> {
    let path = std::env::var("PATH").unwrap_or_default();
    path.split(':')
        .map(|d| std::path::Path::new(d).join(name))
        .find(|p| p.is_file())
        .map(|p| p.display().to_string())
}
