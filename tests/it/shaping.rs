//! Shaping the stack: dependents that restart with their dependency, profiles and
//! disabled services, local override files, replicas, and ports chosen at start.

use std::time::Duration;

use nix::sys::signal::{Signal, kill};
use nix::unistd::Pid;

use crate::harness::{Project, fixture, free_ports, wait_for};

const LONG: Duration = Duration::from_secs(20);

/// `depends_on = { db = { condition = "healthy", restart = true } }`: a crash of `db`
/// restarts `api` once `db` is healthy again; `other` (a plain dependent) keeps running.
#[test]
fn a_dependent_with_restart_true_restarts_when_its_dependency_restarts() {
    let fx = fixture();
    let [db, api, other] = free_ports();
    let p = Project::new(&format!(
        r#"
[services.db]
command = ["{fx}", "--port", "{db}"]
restart = "always"

[services.api]
command = ["{fx}", "--port", "{api}"]
depends_on = {{ db = {{ condition = "healthy", restart = true }} }}

[services.other]
command = ["{fx}", "--port", "{other}"]
depends_on = ["db"]
"#
    ));
    p.xtask(&["start-bg"]).assert_ok();
    let (db_pid, api_pid, other_pid) = (p.pid_of("db"), p.pid_of("api"), p.pid_of("other"));

    kill(Pid::from_raw(db_pid), Signal::SIGKILL).expect("kill db");
    p.wait_for_new_pid("db", db_pid);
    let new_api = p.wait_for_new_pid("api", api_pid);
    wait_for("api healthy again", LONG, || {
        p.xtask(&["status", "api"]).stdout.contains("healthy")
    });
    assert_eq!(
        p.pid_of("other"),
        other_pid,
        "a dependent without restart = true restarted"
    );
    let log = p.monitor_log();
    assert!(
        log.contains("api: restarts once db is healthy (restart on the dependency)"),
        "{log}"
    );
    // The dependency's end came first, then the dependent's hold, then db healthy,
    // then the dependent's new start.
    let at = |text: &str| log.find(text).unwrap_or(usize::MAX);
    assert!(
        at("db: exited") < at("api: restarts once") && at("db: healthy") < at(&format!("api: started (pid {new_api})")),
        "{log}"
    );

    // `restart db` takes its dependents down and up as well.
    let api_pid = p.pid_of("api");
    p.xtask(&["restart", "db"]).assert_ok();
    assert_ne!(p.pid_of("api"), api_pid);
    p.xtask(&["stop"]).assert_ok();
    p.assert_nothing_running();
}

/// `profiles` keep a service out until one of them is active (`--profile`,
/// `XTASK_PROFILES`); `disabled` until it is named; `status` says `inactive`; a
/// dependency on an inactive service is refused, naming both and the profile.
#[test]
fn profiles_and_disabled_services_start_only_when_asked() {
    let fx = fixture();
    let [api, debug, tool] = free_ports();
    let p = Project::new(&format!(
        r#"
[services.api]
command = ["{fx}", "--port", "{api}"]

[services.debugger]
command = ["{fx}", "--port", "{debug}"]
profiles = ["debug"]

[services.tool]
command = ["{fx}", "--port", "{tool}"]
disabled = true
"#
    ));
    p.xtask(&["start-bg"]).assert_ok();
    let status = p.xtask(&["status"]);
    status.assert_ok();
    let state = |out: &str, name: &str| {
        out.lines()
            .find(|l| l.split_whitespace().next() == Some(name))
            .and_then(|l| l.split_whitespace().nth(1))
            .unwrap_or("")
            .to_string()
    };
    assert_eq!(state(&status.stdout, "api"), "running", "{status}");
    assert_eq!(state(&status.stdout, "debugger"), "inactive", "{status}");
    assert_eq!(state(&status.stdout, "tool"), "inactive", "{status}");

    p.xtask(&["start-bg", "--profile", "debug"]).assert_ok();
    assert_eq!(state(&p.xtask(&["status"]).stdout, "debugger"), "running");
    assert_eq!(state(&p.xtask(&["status"]).stdout, "tool"), "inactive");
    p.xtask(&["start-bg", "tool"]).assert_ok();
    assert_eq!(state(&p.xtask(&["status"]).stdout, "tool"), "running");
    p.xtask(&["stop"]).assert_ok();
    p.assert_nothing_running();

    // XTASK_PROFILES does what --profile does.
    let env = p
        .command(&["start-bg"])
        .env("XTASK_PROFILES", "debug")
        .output()
        .expect("run");
    assert!(env.status.success(), "{}", String::from_utf8_lossy(&env.stderr));
    assert_eq!(state(&p.xtask(&["status"]).stdout, "debugger"), "running");
    p.xtask(&["stop"]).assert_ok();
    p.assert_nothing_running();
}

#[test]
fn a_dependency_on_an_inactive_service_names_both_and_the_profile() {
    let fx = fixture();
    let p = Project::new(&format!(
        r#"
[services.db]
command = ["{fx}"]
profiles = ["native", "full"]

[services.api]
command = ["{fx}"]
depends_on = ["db"]
"#
    ));
    p.xtask(&["start-bg"]).assert_code(2).assert_contains(
        "cannot start: service `api` depends on `db`, which is not active: `db` belongs to profile `native` or `full`: add --profile native or --profile full (or set XTASK_PROFILES), or name it on the command line",
    );
    p.assert_nothing_running();
    p.xtask(&["start-bg", "--profile", "full"]).assert_ok();
    p.xtask(&["stop"]).assert_ok();
    p.assert_nothing_running();
}

/// `services.local.toml` beside services.toml is merged over it: its port wins, `env`
/// merges by key, and `check --print` names the file each value comes from.
#[test]
fn a_local_override_changes_a_port_and_check_print_names_it() {
    let fx = fixture();
    let [shared, local] = free_ports();
    let p = Project::new(&format!(
        r#"
[services.api]
command = ["{fx}", "--port", "${{API_PORT:-{shared}}}", "--print-env", "MODE", "--print-env", "LEVEL"]
port = {shared}
env = {{ MODE = "shared", LEVEL = "info" }}
"#
    ));
    p.write(
        "services.local.toml",
        &format!(
            "[services.api]\nport = {local}\nenv = {{ MODE = \"local\" }}\n\n[services.api.health]\nport = {local}\n"
        ),
    );
    let print = p.xtask(&["check", "--print"]);
    print.assert_ok();
    let line = |key: &str| {
        print
            .stdout
            .lines()
            .find(|l| l.starts_with(&format!("{key} =")))
            .unwrap_or_else(|| panic!("no {key} in\n{print}"))
            .to_string()
    };
    assert!(line("services.api.port").contains(&format!("= {local} ")), "{print}");
    assert!(
        line("services.api.port").ends_with("# services.local.toml:2"),
        "{print}"
    );
    assert!(
        line("services.api.env.MODE").ends_with("# services.local.toml:3"),
        "{print}"
    );
    assert!(line("services.api.env.LEVEL").ends_with("# services.toml:5"), "{print}");
    assert!(line("services.api.command").ends_with("# services.toml:3"), "{print}");

    // The service runs on the override's port (given to it through API_PORT) with the
    // merged environment.
    let run = p
        .command(&["start-bg"])
        .env("API_PORT", local.to_string())
        .output()
        .expect("run");
    assert!(run.status.success(), "{}", String::from_utf8_lossy(&run.stdout));
    let status = p.xtask(&["status", "--json"]);
    assert!(
        status.stdout.contains(&format!("\"ports\": [\n        {local}\n")),
        "{status}"
    );
    let log = p.log("api");
    assert!(log.contains("MODE=local") && log.contains("LEVEL=info"), "{log}");
    p.xtask(&["stop"]).assert_ok();
    p.assert_nothing_running();
}

/// `--config` twice (or XTASK_CONFIG with `:`): later files win, and a problem in one
/// is located in that file.
#[test]
fn several_config_files_merge_in_order_and_problems_name_their_file() {
    let fx = fixture();
    let p = Project::new(&format!(
        "[services.api]\ncommand = [\"{fx}\"]\nstop_timeout = \"2s\"\n"
    ));
    p.write("ci.toml", "[services.api]\nstop_timeout = \"7s\"\n");
    p.write("broken.toml", "\n[services.api]\nstop_timeout = 5\n");
    let base = p.path("services.toml").to_string_lossy().into_owned();
    let ci = p.path("ci.toml").to_string_lossy().into_owned();
    let broken = p.path("broken.toml").to_string_lossy().into_owned();

    let print = p.xtask(&["--config", &base, "--config", &ci, "check", "--print"]);
    print
        .assert_ok()
        .assert_contains("services.api.stop_timeout = \"7s\"")
        .assert_contains("# ci.toml:2");
    let listed = p
        .command(&["check", "--print"])
        .env("XTASK_CONFIG", format!("{base}:{ci}"))
        .output()
        .expect("run");
    assert!(String::from_utf8_lossy(&listed.stdout).contains("# ci.toml:2"));

    let check = p.xtask(&["--config", &base, "--config", &broken, "check"]);
    check.assert_code(78).assert_contains(&format!(
        "{broken}:3:16: `stop_timeout` in [services.api] must be a duration"
    ));
}

/// `replicas = 3`: three instances, `api.1` to `api.3`, each with XTASK_REPLICA and its
/// own port from a sum; `status` lists each; a dependency on `api` waits for all three;
/// `stop api` stops all three (and their dependents).
#[test]
fn replicas_run_as_instances_and_stop_as_a_group() {
    let fx = fixture();
    let [base, _, _, _, web] = free_ports();
    let first = base + 1;
    let p = Project::new(&format!(
        r#"
[services.api]
command = ["{fx}", "--port", "${{PORT}}", "--print-env", "XTASK_REPLICA", "--print-env", "PORT"]
replicas = 3
port = "${{API_BASE:-{base}}} + ${{XTASK_REPLICA}}"

[services.web]
command = ["{fx}", "--port", "{web}"]
depends_on = ["api"]
"#
    ));
    p.xtask(&["start-bg"]).assert_ok();
    let status = p.xtask(&["status", "--json"]);
    let json: serde_json::Value = serde_json::from_str(&status.stdout).expect("json");
    let services = json["services"].as_array().expect("services");
    let names: Vec<&str> = services.iter().filter_map(|s| s["service"].as_str()).collect();
    assert_eq!(names, ["api.1", "api.2", "api.3", "web"], "{status}");
    let pids: Vec<i64> = services.iter().take(3).filter_map(|s| s["pid"].as_i64()).collect();
    assert_eq!(pids.len(), 3, "{status}");
    assert!(pids[0] != pids[1] && pids[1] != pids[2], "{status}");
    for (i, service) in services.iter().take(3).enumerate() {
        let port = first + i as u16;
        assert_eq!(service["ports"][0].as_u64(), Some(u64::from(port)), "{status}");
        let log = p.log(&format!("api.{}", i + 1));
        assert!(
            log.contains(&format!("XTASK_REPLICA={}", i + 1)) && log.contains(&format!("PORT={port}")),
            "{log}"
        );
    }

    // `logs api` interleaves the three, prefixed.
    p.xtask(&["logs", "api"])
        .assert_ok()
        .assert_contains("api.2 | XTASK_REPLICA=2");

    let stop = p.xtask(&["stop", "api"]);
    stop.assert_ok();
    for pid in pids {
        assert!(
            !crate::harness::is_alive(pid as i32),
            "replica {pid} survived `stop api`\n{stop}"
        );
    }
    assert!(
        p.xtask(&["status", "web"]).stdout.contains("stopped"),
        "its dependent was not stopped with it"
    );
    p.assert_nothing_running();
}

/// `port = "auto"`: a free port is chosen at start and recorded; the service gets it as
/// PORT, another service names it as `${port:web}`, `run` exports it as XTASK_PORT_WEB,
/// `status` shows it, and a restart keeps it while it is free.
#[test]
fn an_auto_port_is_chosen_recorded_shared_and_kept() {
    let fx = fixture();
    let p = Project::new(&format!(
        r#"
[services.web]
command = ["{fx}", "--port", "${{PORT}}"]
port = "auto"

[services.client]
command = ["{fx}", "--print-env", "WEB_URL"]
env = {{ WEB_URL = "http://127.0.0.1:${{port:web}}/" }}
depends_on = ["web"]
"#
    ));
    // Before any start: `auto`, and nothing chosen.
    p.xtask(&["status"]).assert_contains("auto");
    p.xtask(&["start-bg"]).assert_ok();
    let port = p.xtask(&["status", "--json"]);
    let json: serde_json::Value = serde_json::from_str(&port.stdout).expect("json");
    let port = json["services"][0]["ports"][0].as_u64().expect("a chosen port") as u16;
    assert!(port > 0);
    assert!(
        std::net::TcpStream::connect(("127.0.0.1", port)).is_ok(),
        "web does not listen on {port}"
    );
    // The client's relay writes its log beside it: the line may trail the start.
    crate::harness::poll(Duration::from_secs(10), || p.log("client").contains("WEB_URL="));
    assert!(
        p.log("client").contains(&format!("WEB_URL=http://127.0.0.1:{port}/")),
        "{}",
        p.log("client")
    );
    let recorded = std::fs::read_to_string(p.path(".xtask/ports.json")).expect("ports.json");
    assert!(recorded.contains(&format!("\"web\": {port}")), "{recorded}");

    // A restart keeps it; `run` exports it.
    p.xtask(&["restart", "web"]).assert_ok();
    p.xtask(&["status", "web"]).assert_contains(&port.to_string());
    let run = p.xtask(&["run", "--", "sh", "-c", "echo web at $XTASK_PORT_WEB"]);
    run.assert_ok().assert_contains(&format!("web at {port}"));
    p.xtask(&["stop"]).assert_ok();
    // Stopped, the port is still free: the next start takes it again.
    p.xtask(&["start-bg"]).assert_ok();
    p.xtask(&["status", "web"]).assert_contains(&port.to_string());
    p.xtask(&["stop"]).assert_ok();
    p.assert_nothing_running();
}

/// Two checkouts of one repository, each `run -- CMD` at the same moment with
/// `port = "auto"`: each gets its own port, and both pass.
#[test]
fn two_checkouts_running_at_once_with_auto_ports_never_clash() {
    let fx = fixture();
    let toml = format!(
        r#"
[services.db]
command = ["{fx}", "--port", "${{PORT}}"]
port = "auto"

[services.api]
command = ["{fx}", "--port", "${{PORT}}"]
port = "auto"
depends_on = ["db"]
"#
    );
    let checkouts = [Project::new(&toml), Project::new(&toml)];
    // CMD: both services answer on the ports it is given, and it prints them.
    let probe = "exec 3<>/dev/tcp/127.0.0.1/$XTASK_PORT_DB && exec 4<>/dev/tcp/127.0.0.1/$XTASK_PORT_API && echo ports $XTASK_PORT_DB $XTASK_PORT_API";
    let runs: Vec<std::process::Child> = checkouts
        .iter()
        .map(|p| {
            p.command(&["run", "--", "bash", "-c", probe])
                .stdout(std::process::Stdio::piped())
                .spawn()
                .expect("run xtask run")
        })
        .collect();
    let mut ports = Vec::new();
    for run in runs {
        let out = run.wait_with_output().expect("wait");
        let text = String::from_utf8_lossy(&out.stdout).into_owned();
        assert!(
            out.status.success(),
            "a run failed:\n{text}\n{}",
            String::from_utf8_lossy(&out.stderr)
        );
        let line = text
            .lines()
            .find_map(|l| l.strip_prefix("ports "))
            .unwrap_or_else(|| panic!("{text}"))
            .to_string();
        ports.extend(line.split_whitespace().map(str::to_string));
    }
    let mut distinct = ports.clone();
    distinct.sort();
    distinct.dedup();
    assert_eq!(distinct.len(), 4, "two checkouts shared a port: {ports:?}");
    for p in &checkouts {
        p.assert_nothing_running();
    }
}

/// `[project] env` reaches every service and `run`'s command; a service's own `env`
/// and `env_file` win over it, as Compose's and process-compose's do.
#[test]
fn the_project_env_reaches_every_service_and_a_service_overrides_it() {
    let fx = fixture();
    let p = Project::new(&format!(
        r#"
[project]
env = {{ SHARED = "from-project", LEVEL = "project", FILED = "project" }}

[services.api]
command = ["{fx}", "--print-env", "SHARED", "--print-env", "LEVEL", "--print-env", "FILED", "--log", "printed"]
env = {{ LEVEL = "service" }}
env_file = "api.env"
health = {{ log = "printed" }}

[services.web]
command = ["{fx}", "--print-env", "SHARED", "--log", "printed"]
health = {{ log = "printed" }}
"#
    ));
    p.write("api.env", "FILED=service-file\n");
    p.xtask(&["start-bg"]).assert_ok();
    let (api, web) = (p.log("api"), p.log("web"));
    p.xtask(&["stop"]).assert_ok();
    assert!(api.contains("SHARED=from-project"), "{api}");
    assert!(
        api.contains("LEVEL=service") && api.contains("FILED=service-file"),
        "{api}"
    );
    assert!(web.contains("SHARED=from-project"), "{web}");
    p.xtask(&["run", "--", "sh", "-c", "echo \"cmd sees $SHARED\""])
        .assert_ok()
        .assert_contains("cmd sees from-project");
    p.assert_nothing_running();
}
