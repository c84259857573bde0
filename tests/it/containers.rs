//! Container services and phase 4 against the real Docker engine. The image is built
//! here without a registry: `docker import` of a root file system holding the fixture
//! and the shared libraries it needs. Without an engine these tests say so and pass,
//! unless `XTASK_REQUIRE_DOCKER=1` (set by CI), under which they fail.

use std::process::Command;
use std::sync::OnceLock;
use std::time::Duration;

use crate::harness::{Project, fixture, free_ports, wait_for};

pub const IMAGE: &str = "xtask-test-fixture:latest";

/// True when the tests can use Docker; otherwise says why (and fails under
/// `XTASK_REQUIRE_DOCKER=1`).
pub fn docker_ready() -> bool {
    static READY: OnceLock<Result<(), String>> = OnceLock::new();
    let ready = READY.get_or_init(|| {
        docker(&["version", "--format", "{{.Server.Version}}"])?;
        build_image()
    });
    match ready {
        Ok(()) => true,
        Err(why) if std::env::var("XTASK_REQUIRE_DOCKER").as_deref() == Ok("1") => {
            panic!("XTASK_REQUIRE_DOCKER=1 but Docker cannot be used: {why}")
        }
        Err(why) => {
            eprintln!("SKIPPED: container test without a Docker engine ({why})");
            false
        }
    }
}

pub fn docker(args: &[&str]) -> Result<String, String> {
    let out = Command::new("docker")
        .args(args)
        .output()
        .map_err(|e| format!("docker: {e}"))?;
    if out.status.success() {
        Ok(String::from_utf8_lossy(&out.stdout).trim().to_string())
    } else {
        Err(String::from_utf8_lossy(&out.stderr).trim().to_string())
    }
}

/// A root file system with the fixture and what `ldd` says it loads, imported as an
/// image whose entry point is the fixture.
fn build_image() -> Result<(), String> {
    let dir = tempfile::tempdir().map_err(|e| e.to_string())?;
    let rootfs = dir.path().join("rootfs");
    std::fs::create_dir_all(rootfs.join("bin")).map_err(|e| e.to_string())?;
    std::fs::copy(fixture(), rootfs.join("bin/fixture")).map_err(|e| e.to_string())?;
    let ldd = Command::new("ldd")
        .arg(fixture())
        .output()
        .map_err(|e| format!("ldd: {e}"))?;
    for line in String::from_utf8_lossy(&ldd.stdout).lines() {
        let Some(path) = line.split_whitespace().find(|w| w.starts_with('/')) else {
            continue;
        };
        let target = rootfs.join(path.trim_start_matches('/'));
        std::fs::create_dir_all(target.parent().expect("a parent")).map_err(|e| e.to_string())?;
        std::fs::copy(path, &target).map_err(|e| format!("copy {path}: {e}"))?;
    }
    let tar = dir.path().join("rootfs.tar");
    let status = Command::new("tar")
        .args(["-C"])
        .arg(&rootfs)
        .args(["-cf"])
        .arg(&tar)
        .arg(".")
        .status()
        .map_err(|e| format!("tar: {e}"))?;
    if !status.success() {
        return Err("tar failed".into());
    }
    let _ = docker(&["rmi", "-f", IMAGE]);
    docker(&[
        "import",
        "--change",
        r#"ENTRYPOINT ["/bin/fixture"]"#,
        &tar.to_string_lossy(),
        IMAGE,
    ])?;
    Ok(())
}

/// Containers, networks and volumes labelled with this project.
pub fn labelled(p: &Project) -> Vec<String> {
    let filter = format!("label=xtask.project={}", p.root.display());
    let mut all = Vec::new();
    for args in [
        vec!["ps", "-a", "-q", "--filter", filter.as_str()],
        vec!["network", "ls", "-q", "--filter", filter.as_str()],
        vec!["volume", "ls", "-q", "--filter", filter.as_str()],
    ] {
        all.extend(docker(&args).unwrap_or_default().lines().map(str::to_string));
    }
    all
}

/// A container (http health on its published port, a named volume) and a process that
/// depends on it, plus a container checked from inside.
fn mixed_stack() -> (Project, [u16; 2]) {
    let [cache_port, api_port] = free_ports();
    let fx = fixture();
    let p = Project::new(&format!(
        r#"
[services.cache]
image = "{IMAGE}"
command = ["--host", "0.0.0.0", "--port", "8080", "--log", "cache ready", "--print-env", "MODE"]
ports = ["{cache_port}:8080"]
env = {{ MODE = "test" }}
volumes = ["xtask-test-data-{cache_port}:/data"]
health = {{ http = "http://127.0.0.1:{cache_port}/health", interval = "100ms", retries = 100 }}

[services.inside]
image = "{IMAGE}"
command = ["--log", "inside ready"]
health = {{ container_command = ["/bin/fixture", "--exit-after", "0"], interval = "100ms", retries = 100 }}

[services.api]
command = ["{fx}", "--port", "{api_port}"]
port = {api_port}
depends_on = ["cache", "inside"]
"#
    ));
    (p, [cache_port, api_port])
}

#[test]
fn a_mixed_stack_starts_reports_logs_and_stops_keeping_its_volume_until_asked() {
    if !docker_ready() {
        return;
    }
    let (p, [cache_port, _]) = mixed_stack();
    p.xtask(&["start-bg"])
        .assert_ok()
        .assert_matches(r"✓ cache  pid \d+  healthy in")
        .assert_matches(r"✓ inside  pid \d+  healthy in")
        .assert_matches(r"✓ api  pid \d+  healthy in");

    let status = p.xtask(&["status", "--json"]);
    status.assert_ok();
    let json: serde_json::Value = serde_json::from_str(&status.stdout).expect("json");
    let cache = json["services"]
        .as_array()
        .expect("services")
        .iter()
        .find(|s| s["service"] == "cache")
        .cloned();
    let cache = cache.expect("cache in status");
    assert_eq!(cache["state"], "running", "{status}");
    assert_eq!(cache["container"]["state"], "running", "{status}");
    assert!(
        cache["container"]["id"].as_str().is_some_and(|id| id.len() == 12),
        "{status}"
    );
    p.xtask(&["status"])
        .assert_ok()
        .assert_matches(r"cache +running \(container [0-9a-f]{12} running\)");

    let logs = p.xtask(&["logs", "cache"]);
    logs.assert_ok();
    assert!(
        logs.stdout.contains("cache ready") && logs.stdout.contains("MODE=test"),
        "{logs}"
    );
    wait_for("the log file to follow the container", Duration::from_secs(10), || {
        p.log("cache").contains("cache ready")
    });

    let volume = format!("xtask-test-data-{cache_port}");
    let stop = p.xtask(&["stop"]);
    stop.assert_ok()
        .assert_contains("removed container")
        .assert_contains("removed network")
        .assert_contains(&format!("kept volume {volume} (`stop --volumes` removes it)"))
        .assert_matches(r"\[4/5\] containers: \d+ action\(s\)");
    p.assert_nothing_running();
    // A volume holds data (a database's): a stop keeps it, as `docker compose down` does.
    assert_eq!(
        labelled(&p),
        vec![volume.clone()],
        "a stop removed the volume or left more"
    );
    p.xtask(&["stop", "--volumes"])
        .assert_ok()
        .assert_contains(&format!("removed volume {volume}"));
    assert_eq!(labelled(&p), Vec::<String>::new(), "labelled Docker objects remain");
    assert!(
        std::net::TcpListener::bind(("127.0.0.1", cache_port)).is_ok(),
        "the published port is still taken"
    );
}

#[test]
fn stop_containers_stops_only_the_containers() {
    if !docker_ready() {
        return;
    }
    let (p, _) = mixed_stack();
    p.xtask(&["start-bg"]).assert_ok();
    p.xtask(&["stop", "--containers"])
        .assert_ok()
        .assert_contains("processes keep running");
    assert!(
        docker(&[
            "ps",
            "-q",
            "--filter",
            &format!("label=xtask.project={}", p.root.display())
        ])
        .unwrap_or_default()
        .is_empty(),
        "a container survived stop --containers"
    );
    assert_eq!(
        p.service_processes().iter().filter(|(_, s, _)| s == "api").count(),
        1,
        "the process was stopped too"
    );
    p.xtask(&["stop", "--volumes"]).assert_ok();
    assert_eq!(labelled(&p), Vec::<String>::new());
}

#[test]
fn a_crashed_container_is_restarted_by_the_monitor() {
    if !docker_ready() {
        return;
    }
    let p = Project::new(&format!(
        r#"
[services.flaky]
image = "{IMAGE}"
command = ["--exit-after", "1500", "--exit-code", "3"]
restart = "on-failure"
max_restarts = 1
restart_delay = "100ms"
"#
    ));
    p.xtask(&["start-bg"]).assert_ok();
    wait_for("the restart", Duration::from_secs(30), || {
        p.monitor_log()
            .contains("flaky: exited (exit code 3); restarting in 100ms (attempt 1 of 1)")
    });
    wait_for("the end", Duration::from_secs(30), || {
        p.monitor_log().contains("gave up after 1 restart(s)")
    });
    p.xtask(&["stop"]).assert_ok();
    assert_eq!(labelled(&p), Vec::<String>::new());
}

#[test]
fn a_compose_file_comes_up_before_its_dependents_and_goes_down_in_phase_4() {
    if !docker_ready() {
        return;
    }
    let [port] = free_ports();
    let fx = fixture();
    let p = Project::new(&format!(
        r#"
[project]
compose_file = "compose.yaml"

[services.api]
command = ["{fx}", "--append", "order.txt"]
depends_on = ["redis"]
"#
    ));
    p.write(
        "compose.yaml",
        &format!(
            "version: '3'\nservices:\n  redis:  # named on a line with a comment\n    image: {IMAGE}\n    command: [\"--host\", \"0.0.0.0\", \"--port\", \"6379\"]\n    ports:\n      - \"127.0.0.1:{port}:6379\"\n    healthcheck:\n      test: [\"CMD\", \"/bin/fixture\", \"--exit-after\", \"0\"]\n      interval: 1s\n      retries: 5\n"
        ),
    );
    // The compose service is waited for until its healthcheck passes (about 1 s:
    // the first check runs after one interval), then its dependent starts.
    p.xtask(&["start-bg"])
        .assert_ok()
        .assert_contains("compose project")
        .assert_matches(r"✓ compose service redis healthy after [\d.]+m?s\n(.*\n)*.*✓ api  pid \d+");
    let status = p.xtask(&["status", "--json"]);
    let json: serde_json::Value = serde_json::from_str(&status.stdout).expect("json");
    assert_eq!(json["compose"][0]["service"], "redis", "{status}");
    assert_eq!(json["compose"][0]["state"], "running", "{status}");
    assert_eq!(json["compose"][0]["health"], "healthy", "{status}");
    p.xtask(&["status"])
        .assert_matches(r"redis +running +- .* healthy .* compose");
    let project = docker(&["ps", "--format", "{{.Label \"com.docker.compose.project\"}}"]).unwrap_or_default();
    assert!(
        project.lines().any(|l| l.starts_with("xtask-")),
        "no compose container runs: {project}"
    );
    p.xtask(&["stop"]).assert_ok().assert_contains("down");
    let left = docker(&["ps", "-a", "--format", "{{.Names}}"]).unwrap_or_default();
    let key_part = p
        .root
        .file_name()
        .map(|n| n.to_string_lossy().to_ascii_lowercase())
        .unwrap_or_default();
    assert!(
        !left.lines().any(|l| l.contains(&key_part)),
        "compose containers remain: {left}"
    );
}

/// Idle costs nothing with containers too: a container with a port probe, one checked
/// from inside (`container_command`, a `docker exec` each second), and a compose
/// service, under the monitor and in the foreground.
#[test]
fn an_idle_stack_of_containers_costs_its_supervisor_nothing() {
    if !docker_ready() {
        return;
    }
    let [port, compose_port] = free_ports();
    let toml = format!(
        r#"
[project]
compose_file = "compose.yaml"

[services.cache]
image = "{IMAGE}"
command = ["--host", "0.0.0.0", "--port", "8080"]
ports = ["{port}:8080"]

[services.inside]
image = "{IMAGE}"
command = ["--log", "inside ready"]
health = {{ container_command = ["/bin/fixture", "--exit-after", "0"] }}
"#
    );
    let compose = format!(
        "services:\n  queue:\n    image: {IMAGE}\n    command: [\"--host\", \"0.0.0.0\", \"--port\", \"6379\"]\n    ports:\n      - \"127.0.0.1:{compose_port}:6379\"\n"
    );
    crate::idle::assert_idle("containers", &toml, &|p| p.write("compose.yaml", &compose));
}

#[test]
fn without_an_engine_start_fails_clearly_and_stop_still_stops_processes() {
    let fx = fixture();
    let p = Project::new(&format!(
        "[services.cache]\nimage = \"{IMAGE}\"\n\n[services.api]\ncommand = [\"{fx}\"]\n"
    ));
    let no_engine = |args: &[&str]| {
        let out = p
            .command(args)
            .env("DOCKER_HOST", "unix:///nonexistent/docker.sock")
            .output()
            .expect("run");
        (
            out.status.code(),
            format!(
                "{}{}",
                String::from_utf8_lossy(&out.stdout),
                String::from_utf8_lossy(&out.stderr)
            ),
        )
    };
    let (code, text) = no_engine(&["check"]);
    assert_eq!(code, Some(1), "{text}");
    assert!(text.contains("no Docker engine answers"), "{text}");
    let (code, text) = no_engine(&["start-bg", "cache"]);
    assert_eq!(code, Some(1), "{text}");
    assert!(text.contains("no Docker engine answers"), "{text}");

    p.xtask(&["start-bg", "api"]).assert_ok();
    let (code, text) = no_engine(&["stop"]);
    assert_eq!(code, Some(0), "{text}");
    assert!(
        text.contains("phase 4 could not run: no Docker engine answers"),
        "{text}"
    );
    p.assert_nothing_running();
}

/// `check` (issue 25): a container service whose image is not on this machine, and a
/// name that a process service and a compose service share, are problems.
#[test]
fn check_reports_a_missing_image_and_a_name_shared_with_compose() {
    if !docker_ready() {
        return;
    }
    let fx = fixture();
    let p = Project::new(&format!(
        r#"
[project]
compose_file = "compose.yaml"

[services.cache]
image = "xtask-test-no-such-image:never"

[services.present]
image = "{IMAGE}"

[services.redis]
command = ["{fx}"]
"#
    ));
    p.write("compose.yaml", &format!("services:\n  redis:\n    image: {IMAGE}\n"));
    let run = p.xtask(&["check"]);
    run.assert_code(1)
        .assert_contains("cache: image `xtask-test-no-such-image:never` is not present locally")
        .assert_contains("redis: a service of services.toml and of ")
        .assert_contains("compose.yaml share this name; rename one");
    assert!(!run.output().contains(&format!("`{IMAGE}` is not present")), "{run}");
}
