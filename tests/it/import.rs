//! `import` turns a team's Procfile, docker-compose.yml or process-compose.yaml (a web
//! app, a database, a worker and a migration job) into a services.toml that passes
//! `check` and starts; what does not map is listed with its line.

use crate::containers::{IMAGE, docker_ready};
use crate::harness::{Project, fixture, free_ports, wait_for};

const LONG: std::time::Duration = std::time::Duration::from_secs(30);

/// The port `status --json` gives `service`.
fn port_of(p: &Project, service: &str) -> u16 {
    let status = p.xtask(&["status", "--json"]);
    let json: serde_json::Value = serde_json::from_str(&status.stdout).unwrap_or_default();
    json["services"]
        .as_array()
        .into_iter()
        .flatten()
        .find(|s| s["service"] == service)
        .and_then(|s| s["ports"][0].as_u64())
        .unwrap_or_else(|| panic!("no port for {service}:\n{status}")) as u16
}

fn get(port: u16) -> String {
    use std::io::{Read, Write};
    let Ok(mut stream) = std::net::TcpStream::connect(("127.0.0.1", port)) else {
        return String::new();
    };
    let _ = stream.write_all(b"GET / HTTP/1.0\r\nHost: localhost\r\n\r\n");
    let mut answer = String::new();
    let _ = stream.read_to_string(&mut answer);
    answer
}

/// Imports `file` in `p`, checks and starts the result; the import's output.
fn import_check_and_start(p: &Project, file: &str) -> String {
    let import = p.xtask(&["import", file]);
    import.assert_ok().assert_contains("wrote");
    let written = std::fs::read_to_string(p.path("services.toml")).expect("the written services.toml");
    p.xtask(&["check"]).assert_ok();
    let start = p.xtask(&["start-bg"]);
    assert_eq!(start.code, Some(0), "{start}\n--- services.toml\n{written}");
    import.output()
}

#[test]
fn a_procfile_becomes_processes_that_start() {
    let p = Project::new("");
    std::fs::remove_file(p.path("services.toml")).expect("no services.toml yet");
    p.write(
        "Procfile",
        "# The app: its web server, its database, a worker; migrations in the release phase\n\
         web: python3 -m http.server $PORT --bind 127.0.0.1\n\
         db: exec redis-server --port $PORT --bind 127.0.0.1 --save '' --appendonly no\n\
         worker: while true; do echo \"worker: working\"; sleep 1; done\n\
         release: echo \"release: migrated\"\n",
    );
    import_check_and_start(&p, "Procfile");
    let web = port_of(&p, "web");
    assert!(get(web).starts_with("HTTP/1.0 200"), "web does not answer on {web}");
    let db = port_of(&p, "db");
    assert!(
        std::net::TcpStream::connect(("127.0.0.1", db)).is_ok(),
        "redis does not listen on {db}"
    );
    wait_for("the worker's line", LONG, || {
        p.log("worker").contains("worker: working")
    });
    assert!(p.log("release").contains("release: migrated"));
    p.xtask(&["stop"]).assert_ok();
    p.assert_nothing_running();
    // Never over a file: the second import refuses and changes nothing.
    let before = std::fs::read_to_string(p.path("services.toml")).expect("services.toml");
    p.xtask(&["import", "Procfile"])
        .assert_code(2)
        .assert_contains("nothing was written");
    assert_eq!(
        std::fs::read_to_string(p.path("services.toml")).expect("services.toml"),
        before
    );
}

#[test]
fn a_process_compose_file_keeps_its_conditions_probes_and_environment() {
    let [db, web] = free_ports::<2>();
    let p = Project::new("");
    std::fs::remove_file(p.path("services.toml")).expect("no services.toml yet");
    p.write(
        "process-compose.yaml",
        &format!(
            r#"version: "0.5"
log_location: /tmp/process-compose.log
environment:
  - "APP_ENV=development"
processes:
  db:
    command: "redis-server --port {db} --bind 127.0.0.1 --save '' --appendonly no"
    readiness_probe:
      exec:
        command: "redis-cli -p {db} ping"
      period_seconds: 1
      failure_threshold: 20
    shutdown:
      signal: 15
      timeout_seconds: 5
  migrate:
    command: "redis-cli -p {db} set schema 1"
    depends_on:
      db:
        condition: process_healthy
  web:
    command: "python3 -m http.server {web} --bind 127.0.0.1"
    depends_on:
      migrate:
        condition: process_completed_successfully
    readiness_probe:
      http_get:
        host: 127.0.0.1
        port: {web}
        path: /
    availability:
      restart: on_failure
      backoff_seconds: 1
  worker:
    command: "while true; do echo \"worker in $APP_ENV\"; sleep 1; done"
    depends_on:
      migrate:
        condition: process_completed_successfully
    log_location: /tmp/worker.log
"#
        ),
    );
    let output = import_check_and_start(&p, "process-compose.yaml");
    assert!(output.contains("process-compose.yaml:2: `log_location`"), "{output}");
    assert!(
        output.contains("process-compose.yaml:39: `worker.log_location`"),
        "{output}"
    );
    assert!(get(web).starts_with("HTTP/1.0 200"), "web does not answer on {web}");
    assert!(p.log("migrate").contains("OK"), "{}", p.log("migrate"));
    wait_for("the worker's line", LONG, || {
        p.log("worker").contains("worker in development")
    });
    p.xtask(&["stop"]).assert_ok();
    p.assert_nothing_running();
}

#[test]
fn a_compose_file_becomes_container_services_that_start() {
    if !docker_ready() {
        return;
    }
    let [web] = free_ports::<1>();
    let p = Project::new("");
    std::fs::remove_file(p.path("services.toml")).expect("no services.toml yet");
    p.write(
        "docker-compose.yml",
        &format!(
            r#"services:
  db:
    image: {IMAGE}
    command: ["--host", "0.0.0.0", "--port", "5432", "--log", "db ready"]
    healthcheck:
      test: ["CMD", "/bin/fixture", "--exit-after", "0"]
      interval: 1s
      retries: 10
    volumes:
      - dbdata:/data
  migrate:
    image: {IMAGE}
    command: ["--log", "migrated", "--exit-after", "0"]
    restart: "no"
    depends_on:
      db:
        condition: service_healthy
  web:
    image: {IMAGE}
    command: ["--host", "0.0.0.0", "--port", "80"]
    ports:
      - "{web}:80"
    depends_on:
      migrate:
        condition: service_completed_successfully
    networks: [front]
  worker:
    image: {IMAGE}
    command: ["--log", "worker up"]
    environment:
      QUEUE: jobs
    depends_on:
      - db
networks:
  front: {{}}
volumes:
  dbdata: {{}}
"#
        ),
    );
    let output = import_check_and_start(&p, "docker-compose.yml");
    assert!(output.contains("docker-compose.yml:26: `web.networks`"), "{output}");
    assert!(get(web).starts_with("HTTP/1.1 200"), "web does not answer on {web}");
    assert!(p.log("migrate").contains("migrated"), "{}", p.log("migrate"));
    p.xtask(&["stop", "--volumes"]).assert_ok();
    p.assert_nothing_running();
    let _ = fixture();
}
