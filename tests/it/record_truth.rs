//! The record is the truth about a running instance: `status` and `stop` use the ports
//! it was started with, and a running service whose config changed since is said to be
//! out of date (by `status` and by `start-bg`), not silently "left alone".

use std::net::TcpStream;
use std::process::{Command, Stdio};
use std::time::Duration;

use crate::harness::{Bystander, Project, fixture, free_ports, is_alive, wait_for};

/// `xtask ARGS` with `key=value` added to its environment, as a user's
/// `API_PORT=39231 make start-bg` does: (exit code, stdout and stderr).
fn xtask_with(p: &Project, args: &[&str], key: &str, value: &str) -> (Option<i32>, String) {
    let output = p
        .command(args)
        .env(key, value)
        .stdout(Stdio::piped())
        .output()
        .expect("run xtask");
    let text = format!(
        "{}{}",
        String::from_utf8_lossy(&output.stdout),
        String::from_utf8_lossy(&output.stderr)
    );
    (output.status.code(), text)
}

fn status_json(p: &Project) -> serde_json::Value {
    let status = p.xtask(&["status", "--json"]);
    serde_json::from_str(&status.stdout).unwrap_or_else(|_| panic!("status --json: {status}"))
}

/// A process of no project listening on `port` (the fixture, without the cookie),
/// killed by its PID when dropped.
fn stranger_on(port: u16) -> Bystander {
    let child = Command::new(fixture())
        .args(["--port", &port.to_string()])
        .env_remove("XTASK_PROJECT")
        .env_remove("XTASK_SERVICE")
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .expect("spawn the stranger");
    let stranger = Bystander { child };
    wait_for("the stranger to listen", Duration::from_secs(10), || {
        TcpStream::connect(("127.0.0.1", port)).is_ok()
    });
    stranger
}

#[test]
fn a_port_set_by_the_environment_is_the_one_status_and_stop_use() {
    let [default, overridden] = free_ports();
    let fx = fixture();
    let p = Project::new(&format!(
        "[services.api]\ncommand = [\"{fx}\", \"--port\", \"${{PORT}}\"]\nport = \"${{API_PORT:-{default}}}\"\n"
    ));
    let (code, out) = xtask_with(&p, &["start-bg"], "API_PORT", &overridden.to_string());
    assert_eq!(code, Some(0), "start-bg with API_PORT={overridden}:\n{out}");
    // Another checkout's service, say, takes the default port the config names.
    let stranger = stranger_on(default);

    let status = p.xtask(&["status"]);
    status.assert_ok().assert_contains(&overridden.to_string());
    assert!(
        !status.stdout.contains(&default.to_string()),
        "status shows the config's port, not the running one's:\n{status}"
    );
    let json = status_json(&p);
    assert_eq!(json["services"][0]["ports"], serde_json::json!([overridden]), "{json}");
    // A test suite run by `run` reaches the service where it listens.
    p.xtask(&["run", "--", "sh", "-c", "echo port=$XTASK_PORT_API"])
        .assert_ok()
        .assert_contains(&format!("port={overridden}\n"));

    p.xtask(&["stop"])
        .assert_ok()
        .assert_contains("no process of this project is left");
    assert!(
        std::net::TcpListener::bind(("127.0.0.1", overridden)).is_ok(),
        "port {overridden} still held after the stop"
    );
    assert!(
        is_alive(stranger.pid()),
        "the stop touched a process not of the project"
    );
    p.assert_nothing_running();
    // Stopped, the service is what the config says again.
    let json = status_json(&p);
    assert_eq!(json["services"][0]["ports"], serde_json::json!([default]), "{json}");
}

fn greeting_service(fx: &str, greeting: &str) -> String {
    format!(
        "[services.api]\ncommand = [\"{fx}\", \"--print-env\", \"GREETING\"]\nenv = {{ GREETING = \"{greeting}\" }}\n"
    )
}

#[test]
fn a_changed_env_of_a_running_service_is_reported_by_status_and_start_bg() {
    let fx = fixture();
    let p = Project::new(&greeting_service(fx, "hello"));
    p.xtask(&["start-bg"]).assert_ok();

    // Unchanged: nothing to report.
    let status = p.xtask(&["status"]);
    status.assert_ok();
    assert!(!status.output().contains("config changed"), "{status}");
    assert_eq!(status_json(&p)["services"][0]["config_changed"], false);
    let again = p.xtask(&["start-bg"]);
    again.assert_ok().assert_contains("left alone");
    assert!(!again.output().contains("config changed"), "{again}");

    p.write("services.toml", &greeting_service(fx, "goodbye"));
    p.xtask(&["status"])
        .assert_ok()
        .assert_contains("config changed; `cargo xtask restart api` applies it");
    let json = status_json(&p);
    assert_eq!(json["services"][0]["config_changed"], true, "{json}");
    let again = p.xtask(&["start-bg"]);
    again
        .assert_ok()
        .assert_contains("config changed; `cargo xtask restart api` applies it");
    assert!(!again.output().contains("left alone"), "{again}");

    // The restart applies it, and then nothing is out of date.
    p.xtask(&["restart", "api"]).assert_ok();
    wait_for(
        "the restarted service to print its new env",
        Duration::from_secs(10),
        || p.log("api").contains("GREETING=goodbye"),
    );
    let status = p.xtask(&["status"]);
    assert!(!status.output().contains("config changed"), "{status}");
    assert_eq!(status_json(&p)["services"][0]["config_changed"], false);
    p.xtask(&["stop"]).assert_ok();
}

/// A record written before records held the config's hash says nothing about the
/// config: its service is not reported as changed.
#[test]
fn a_record_without_hashes_is_not_reported_as_changed() {
    let fx = fixture();
    let p = Project::new(&greeting_service(fx, "hello"));
    p.xtask(&["start-bg"]).assert_ok();
    let path = p.path(".xtask/run/api.json");
    let mut record: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(&path).expect("read the record")).expect("a JSON record");
    let fields = record.as_object_mut().expect("a record object");
    assert!(fields.remove("config_hash").is_some(), "no config_hash in {record}");
    let fields = record.as_object_mut().expect("a record object");
    fields.remove("env_hash");
    std::fs::write(&path, record.to_string()).expect("write the older record");

    p.write("services.toml", &greeting_service(fx, "goodbye"));
    let status = p.xtask(&["status"]);
    status.assert_ok();
    assert!(!status.output().contains("config changed"), "{status}");
    assert_eq!(status_json(&p)["services"][0]["config_changed"], false);
    p.xtask(&["stop"]).assert_ok();
}

/// `containment` in `status --json` is the running stack's, from its records: a stack
/// started with `XTASK_CGROUP=0` is `tree`, whatever the environment of the `status`
/// that looks at it.
#[test]
fn containment_is_the_running_stacks() {
    let fx = fixture();
    let p = Project::new(&format!("[services.web]\ncommand = [\"{fx}\"]\n")).with_env("XTASK_CGROUP", "0");
    p.xtask(&["start-bg"]).assert_ok();
    let out = p
        .command(&["status", "--json"])
        .env("XTASK_CGROUP", "1")
        .stdout(Stdio::piped())
        .output()
        .expect("status");
    let json: serde_json::Value = serde_json::from_slice(&out.stdout).expect("JSON");
    assert_eq!(json["containment"], "tree", "{json}");
    p.xtask(&["stop"]).assert_ok();
}
