//! The team stack (`tests/stacks/team`): the shapes real teams write, none of them the
//! fixture. An `initdb` job and PostgreSQL run as `postgres`, redis in the foreground, a
//! migration job, a cargo-built API rebuilt on a change, and a Python worker on a
//! terminal with no health check. The `it` suite runs twice (with cgroups, then
//! `XTASK_CGROUP=0`), so each test covers both containment modes.

use std::io::{Read, Write};
use std::net::{TcpListener, TcpStream};
use std::process::Command;
use std::time::Duration;

use crate::harness::{Project, team_stack, wait_for};

const LONG: Duration = Duration::from_secs(30);

/// The stack's edges: (service, what it depends on).
const EDGES: [(&str, &str); 6] = [
    ("db", "initdb"),
    ("migrate", "db"),
    ("api", "migrate"),
    ("api", "redis"),
    ("worker", "migrate"),
    ("worker", "redis"),
];

fn status_json(p: &Project) -> serde_json::Value {
    let status = p.xtask(&["status", "--json"]);
    serde_json::from_str(&status.stdout).unwrap_or_else(|_| panic!("status --json: {status}"))
}

/// A service's row of `status --json`.
fn row<'a>(json: &'a serde_json::Value, service: &str) -> &'a serde_json::Value {
    json["services"]
        .as_array()
        .and_then(|rows| rows.iter().find(|r| r["service"] == service))
        .unwrap_or_else(|| panic!("no row for {service}: {json}"))
}

/// The port xtask chose for `service`.
fn port_of(json: &serde_json::Value, service: &str) -> u16 {
    row(json, service)["ports"][0]
        .as_u64()
        .and_then(|port| u16::try_from(port).ok())
        .unwrap_or_else(|| panic!("no port for {service}: {json}"))
}

/// A service's record in the state directory.
fn record(p: &Project, service: &str) -> serde_json::Value {
    let path = p.path(&format!(".xtask/run/{service}.json"));
    let text = std::fs::read_to_string(&path).unwrap_or_else(|err| panic!("{}: {err}", path.display()));
    serde_json::from_str(&text).unwrap_or_else(|err| panic!("{}: {err}\n{text}", path.display()))
}

/// The answer to one request, as text (status line, headers, body); an error while
/// nothing listens or answers.
fn exchange(port: u16, request: &str) -> std::io::Result<String> {
    let mut stream = TcpStream::connect(("127.0.0.1", port))?;
    stream.set_read_timeout(Some(Duration::from_secs(5)))?;
    stream.write_all(request.as_bytes())?;
    let mut answer = Vec::new();
    let mut buffer = [0; 4096];
    loop {
        let n = stream.read(&mut buffer)?;
        answer.extend_from_slice(&buffer[..n]);
        // An HTTP answer ends with the connection (`Connection: close`); redis keeps
        // it open, and its answer is one line.
        if n == 0 || (answer.starts_with(b"+") && answer.ends_with(b"\r\n")) {
            return Ok(String::from_utf8_lossy(&answer).into_owned());
        }
    }
}

fn get(port: u16, path: &str) -> std::io::Result<String> {
    exchange(
        port,
        &format!("GET {path} HTTP/1.1\r\nHost: 127.0.0.1\r\nConnection: close\r\n\r\n"),
    )
}

/// `query` through psql, the way a developer asks the database.
fn psql(p: &Project, port: u16, query: &str) -> String {
    let psql = format!("{}/psql", p.env_value("PG_BIN").expect("PG_BIN set by team_stack"));
    let out = Command::new(&psql)
        .args([
            "--host=127.0.0.1",
            "--username=postgres",
            "--no-psqlrc",
            "--tuples-only",
            "--no-align",
        ])
        .arg(format!("--port={port}"))
        .args(["--command", query])
        .env("PGCONNECT_TIMEOUT", "5")
        .output()
        .expect("run psql");
    assert!(
        out.status.success(),
        "psql {query:?}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout).trim().to_string()
}

/// Everything up: the jobs completed, the servers running and healthy, each service
/// started only once what it depends on was healthy or completed (by the records:
/// a dependency's start plus its time to healthy is when it was seen so).
#[track_caller]
fn assert_up_in_order(p: &Project) -> serde_json::Value {
    let json = status_json(p);
    for job in ["initdb", "migrate"] {
        assert_eq!(row(&json, job)["state"], "completed", "{json}");
    }
    for server in ["db", "redis", "api", "worker"] {
        let r = row(&json, server);
        assert!(r["state"] == "running" && r["health"] == "healthy", "{server}: {json}");
    }
    if std::env::var("XTASK_CGROUP").is_ok_and(|v| v == "0") {
        assert_eq!(json["containment"], "tree", "{json}");
    }
    for (service, dependency) in EDGES {
        let (after, before) = (record(p, service), record(p, dependency));
        let ready = before["started_at_ms"].as_u64().expect("started_at_ms")
            + before["healthy_after_ms"].as_u64().expect("healthy_after_ms");
        let started = after["started_at_ms"].as_u64().expect("started_at_ms");
        assert!(
            started >= ready,
            "{service} started at {started}, before {dependency} was ready at {ready}\n{before}\n{after}"
        );
    }
    json
}

/// Stops the stack and checks that nothing of it is left: no process (the real servers
/// rewrite their titles, so the guard's scan of processes working in the project
/// counts too), no cgroup, every chosen port free.
#[track_caller]
fn assert_stops_clean(p: &Project, ports: &[u16]) {
    p.xtask(&["stop"])
        .assert_ok()
        .assert_contains("no process of this project is left");
    let left = p.leftovers();
    assert!(left.is_empty(), "the team stack left processes: {left:?}");
    assert!(p.cgroups().is_empty(), "the team stack left cgroups: {:?}", p.cgroups());
    for port in ports {
        assert!(
            TcpListener::bind(("127.0.0.1", *port)).is_ok(),
            "port {port} still held after the stop"
        );
    }
}

#[test]
fn the_team_stack_starts_in_order_serves_and_stops_leaving_nothing() {
    let p = team_stack();
    let start = p.xtask_within(&["start-bg"], Duration::from_secs(120));
    start.assert_ok().assert_contains("6 service(s) up");
    let json = assert_up_in_order(&p);
    let ports = ["db", "redis", "api"].map(|s| port_of(&json, s));
    let [db, redis, api] = ports;

    let pong = exchange(redis, "PING\r\n").expect("ask redis");
    assert_eq!(pong, "+PONG\r\n", "redis on {redis}");
    assert_eq!(psql(&p, db, "SELECT name FROM items"), "first", "the migration's table");
    let root = get(api, "/").expect("ask the API");
    assert!(
        root.starts_with("HTTP/1.1 200") && root.ends_with("hello from the team api\n"),
        "{root}"
    );
    let health = get(api, "/health").expect("ask the API");
    assert!(health.starts_with("HTTP/1.1 200"), "the API's redis check: {health}");
    // Python without -u, on a terminal: each line reaches the log as it is printed.
    wait_for("the worker's second job in its log", LONG, || {
        p.log("worker").contains("worker: job 2 done")
    });

    assert_stops_clean(&p, &ports);

    // The next morning: the cluster is there, so the job skips; the migration runs
    // again and changes nothing.
    p.xtask_within(&["start-bg"], Duration::from_secs(120)).assert_ok();
    assert_up_in_order(&p);
    assert!(
        p.log("initdb").contains("initdb: data/pg is initialised already"),
        "{}",
        p.log("initdb")
    );
    assert!(p.log("migrate").contains("INSERT 0 0"), "{}", p.log("migrate"));
    let json = status_json(&p);
    assert_eq!(psql(&p, port_of(&json, "db"), "SELECT count(*) FROM items"), "1");
    let ports = ["db", "redis", "api"].map(|s| port_of(&json, s));
    assert_stops_clean(&p, &ports);
}

/// The API's build is `cargo build`: with CARGO_TARGET_DIR set in the developer's
/// environment, `--target-dir` still puts the binary where `command` looks; a saved
/// change to its source rebuilds it, and the new binary answers.
#[test]
fn the_team_api_is_rebuilt_by_cargo_when_its_source_changes() {
    let p = team_stack().with_env("CARGO_TARGET_DIR", "elsewhere");
    p.xtask_within(&["start-bg"], Duration::from_secs(120)).assert_ok();
    assert!(p.path("api/target/debug/team-api").is_file(), "the API's binary");
    assert!(!p.path("api/elsewhere").exists(), "the build followed CARGO_TARGET_DIR");
    let api = port_of(&status_json(&p), "api");
    let old = p.pid_of("api");

    let source = std::fs::read_to_string(p.path("api/src/main.rs")).expect("the API's source");
    let changed = source.replace("hello from the team api", "hello from the rebuilt api");
    assert_ne!(changed, source, "the greeting to change");
    // Saved as editors save: a new file renamed over the old one.
    p.write("api/src/main.rs.new", &changed);
    std::fs::rename(p.path("api/src/main.rs.new"), p.path("api/src/main.rs")).expect("save");

    wait_for("the rebuilt API to answer", LONG, || {
        let json = status_json(&p);
        row(&json, "api")["health"] == "healthy"
            && p.pid_of("api") != old
            && get(api, "/").is_ok_and(|answer| answer.ends_with("hello from the rebuilt api\n"))
    });
    let ports = ["db", "redis", "api"].map(|s| port_of(&status_json(&p), s));
    assert_stops_clean(&p, &ports);
}
