//! The tool in CI and onboarding: builds, cleanup before start, `run`, environment
//! switches, `${VAR}` and env files, `--quiet`.

use std::process::Stdio;
use std::time::Duration;

use crate::harness::{Project, fixture, free_ports, wait_for};

/// a <- b, each with a build step that appends to build.txt. Each is healthy once it
/// says so, which it does after appending its start: without a health check a service
/// is up when spawned, and b could append before a did.
fn built_chain(build_b: &str) -> Project {
    let fx = fixture();
    Project::new(&format!(
        r#"
[services.b]
command = ["{fx}", "--append", "order.txt", "--log", "ready"]
depends_on = ["a"]
build = "{build_b}"
health = {{ log = "ready" }}

[services.a]
command = ["{fx}", "--append", "order.txt", "--log", "ready"]
build = "echo building a; echo a built >> order.txt"
health = {{ log = "ready" }}
"#
    ))
}

#[test]
fn builds_run_before_any_start_and_in_dependency_order() {
    let p = built_chain("echo b built >> order.txt");
    let run = p.xtask(&["start-bg"]);
    run.assert_ok()
        .assert_matches(r"✓ built a in \d+")
        .assert_matches(r"✓ built b in \d+")
        .assert_contains("a | building a");
    let order = p.read_lines("order.txt", 4);
    assert_eq!(order, "a built\nb built\na started\nb started\n");
}

#[test]
fn a_failing_build_starts_nothing_and_shows_its_output() {
    let p = built_chain("echo compiling b; echo 'error[E0425]: cannot find value' >&2; exit 101");
    p.xtask(&["start-bg"])
        .assert_code(1)
        .assert_contains("✗ build of b failed: exit status: 101")
        .assert_contains("│ error[E0425]: cannot find value")
        .assert_contains("the build of b failed; nothing was started");
    let order = std::fs::read_to_string(p.path("order.txt")).expect("order file");
    assert_eq!(order, "a built\n", "something started after a failed build");
    p.assert_nothing_running();
}

#[test]
fn no_build_and_xtask_build_0_skip_builds_and_a_flag_beats_the_variable() {
    let p = built_chain("echo b built >> order.txt");
    p.xtask(&["start-bg", "--no-build"]).assert_ok();
    p.xtask(&["stop"]).assert_ok();
    let mut skipped = p.command(&["start-bg"]);
    skipped.env("XTASK_BUILD", "0");
    assert!(skipped.output().expect("start-bg").status.success());
    p.xtask(&["stop"]).assert_ok();
    let order = std::fs::read_to_string(p.path("order.txt")).expect("order file");
    assert!(!order.contains("built"), "a build ran although skipped:\n{order}");

    let mut forced = p.command(&["start-bg", "--build"]);
    forced.env("XTASK_BUILD", "0");
    assert!(forced.output().expect("start-bg").status.success());
    let order = std::fs::read_to_string(p.path("order.txt")).expect("order file");
    assert!(
        order.contains("a built"),
        "--build did not beat XTASK_BUILD=0:\n{order}"
    );
}

#[test]
fn a_build_that_hangs_is_bounded_by_build_timeout() {
    let fx = fixture();
    let p = Project::new(&format!(
        "[services.a]\ncommand = [\"{fx}\"]\nbuild = \"sleep 30\"\nbuild_timeout = \"300ms\"\n"
    ));
    let run = p.xtask(&["start-bg"]);
    run.assert_code(1)
        .assert_contains("build of a failed: did not finish within its build_timeout of 300ms");
    assert!(run.took < Duration::from_secs(20), "the build was not bounded\n{run}");
    p.assert_nothing_running();
}

#[test]
fn the_build_command_builds_alone() {
    let p = built_chain("echo b built >> order.txt");
    p.xtask(&["build", "b"]).assert_ok().assert_matches(r"✓ built b in");
    assert_eq!(
        std::fs::read_to_string(p.path("order.txt")).expect("order"),
        "b built\n"
    );
    p.assert_nothing_running();
}

#[test]
fn leftovers_of_a_killed_earlier_run_are_cleaned_before_start() {
    let fx = fixture();
    let p = Project::new(&format!(
        "[services.worker]\ncommand = [\"{fx}\", \"--spawn-daemon\"]\n"
    ));
    p.xtask(&["start-bg", "--no-monitor"]).assert_ok();
    // The daemon has run, and the middle process that forked it is gone: two left.
    wait_for("leader and daemon", Duration::from_secs(10), || {
        p.log("worker").contains("daemon grandchild running") && p.service_processes().len() == 2
    });
    let old: Vec<i32> = p.service_processes().iter().map(|(pid, _, _)| *pid).collect();
    // As after a crash that lost the records.
    std::fs::remove_dir_all(p.path(".xtask/run")).expect("remove run dir");

    p.xtask(&["start-bg", "--no-cleanup"])
        .assert_code(1)
        .assert_contains("leftover processes of this project are running without a record");
    let start = p.xtask(&["start-bg"]);
    start
        .assert_ok()
        .assert_contains("leftover (of worker): pid")
        .assert_contains("stopped 2 leftover process(es)");
    let now: Vec<i32> = p.service_processes().iter().map(|(pid, _, _)| *pid).collect();
    assert!(
        old.iter().all(|pid| !now.contains(pid)),
        "leftovers survived: {old:?} still in {now:?}"
    );
}

#[test]
fn run_exits_with_the_command_code_and_stops_what_it_started() {
    let [port] = free_ports();
    let fx = fixture();
    let p = Project::new(&format!(
        "[services.api]\ncommand = [\"{fx}\", \"--port\", \"{port}\"]\nport = {port}\n"
    ));
    let run = p.xtask(&["run", "--", "sh", "-c", "echo probing; exit 7"]);
    run.assert_code(7)
        .assert_contains("probing")
        .assert_contains("[5/5] verify");
    p.assert_nothing_running();
}

#[test]
fn run_tears_down_when_the_command_is_killed_by_a_signal() {
    let fx = fixture();
    let p = Project::new(&format!("[services.api]\ncommand = [\"{fx}\"]\n"));
    p.xtask(&["run", "--", "sh", "-c", "kill -TERM $$"]).assert_code(143);
    p.assert_nothing_running();
}

#[test]
fn run_with_a_command_not_found_exits_127_and_tears_down() {
    let fx = fixture();
    let p = Project::new(&format!("[services.api]\ncommand = [\"{fx}\"]\n"));
    p.xtask(&["run", "--", "no-such-command-xyz"])
        .assert_code(127)
        .assert_contains("`no-such-command-xyz` not found");
    p.assert_nothing_running();
}

#[test]
fn run_leaves_services_that_were_already_running() {
    let fx = fixture();
    let p = Project::new(&format!("[services.api]\ncommand = [\"{fx}\"]\n"));
    p.xtask(&["start-bg"]).assert_ok();
    let before = p.service_processes();
    p.xtask(&["run", "--", "true"])
        .assert_ok()
        .assert_contains("they keep running");
    assert_eq!(
        p.service_processes(),
        before,
        "run disturbed services that ran before it"
    );
}

#[test]
fn run_gives_the_command_the_project_env_file() {
    let fx = fixture();
    let p = Project::new(&format!(
        "[project]\nenv_file = \".env\"\n\n[services.api]\ncommand = [\"{fx}\"]\n"
    ));
    p.write(".env", "GREETING=\"hello from env_file\"\n");
    let run = p.xtask(&["run", "--", "sh", "-c", "echo \"cmd sees: $GREETING\""]);
    run.assert_ok().assert_contains("cmd sees: hello from env_file");
}

#[test]
fn variables_come_from_the_environment_then_the_service_then_the_project_env_file() {
    let [p1, p2] = free_ports();
    let fx = fixture();
    let p = Project::new(&format!(
        r#"
[project]
env_file = "project.env"

[services.api]
env_file = "api.env"
command = ["{fx}", "--port", "${{API_PORT}}", "--print-env", "LEVEL", "--print-env", "SHARED", "--print-env", "TABLE"]
port = "${{API_PORT:-1}}"
env = {{ TABLE = "${{MISSING:-table default}}" }}
health = {{ http = "http://127.0.0.1:${{API_PORT}}/health" }}
"#
    ));
    p.write(
        "project.env",
        &format!("API_PORT={p1}\nLEVEL=project\nSHARED=project\n"),
    );
    p.write("api.env", "LEVEL=service\n");
    let mut start = p.command(&["start-bg"]);
    start.env("API_PORT", p2.to_string()).stdout(Stdio::piped());
    let out = start.output().expect("start-bg");
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stdout));
    // The service's relay writes its log beside it: the lines may trail the start.
    let mut log = String::new();
    crate::harness::poll(Duration::from_secs(10), || {
        log = p.log("api");
        log.contains("api listening on port") && log.contains("TABLE=")
    });
    assert!(
        log.contains(&format!("api listening on port {p2}")),
        "the environment did not beat env_file:\n{log}"
    );
    for line in ["LEVEL=service", "SHARED=project", "TABLE=table default"] {
        assert!(log.contains(line), "missing {line:?} in:\n{log}");
    }
}

/// Runs `check` on a services.toml and returns its stderr.
fn check_error(p: &Project) -> String {
    let run = p.xtask(&["--config", "services.toml", "check"]);
    run.assert_code(78);
    run.stderr
}

#[test]
fn an_undefined_variable_is_a_config_error_naming_it() {
    let p = Project::new("[services.api]\ncommand = \"serve --port ${NO_SUCH_PORT_VAR}\"\n");
    let err = check_error(&p);
    assert!(
        err.contains("services.toml:2:11: `command` in [services.api]: variable `NO_SUCH_PORT_VAR` is not set"),
        "{err}"
    );
    assert!(
        err.contains("set NO_SUCH_PORT_VAR in the environment or an env_file, or write ${NO_SUCH_PORT_VAR:-default}")
    );
}

#[test]
fn an_unterminated_variable_and_a_variable_loop_are_config_errors() {
    let p = Project::new("[project]\nenv_file = \".env\"\n\n[services.api]\ncommand = \"serve ${A}\"\ncwd = \"${B\"\n");
    p.write(".env", "A='${C}'\nC='${A}'\n");
    let err = check_error(&p);
    assert!(
        err.contains("services.toml:5:11: `command` in [services.api]: variable loop: A -> C -> A"),
        "{err}"
    );
    assert!(
        err.contains("services.toml:6:7: `cwd` in [services.api]: `${` is not closed by `}`"),
        "{err}"
    );
}

#[test]
fn a_missing_or_broken_env_file_names_the_file_and_line() {
    let p =
        Project::new("[project]\nenv_file = [\"missing.env\", \"broken.env\"]\n\n[services.api]\ncommand = \"x\"\n");
    p.write("broken.env", "OK=1\nthis line is wrong\n");
    let err = check_error(&p);
    assert!(
        err.contains("cannot read env_file") && err.contains("missing.env: No such file or directory"),
        "{err}"
    );
    assert!(err.contains("broken.env:2: cannot parse `this line is wrong`"), "{err}");
}

#[test]
fn xtask_force_makes_stop_force_and_no_force_beats_it() {
    let fx = fixture();
    let p = Project::new(&format!("[services.api]\ncommand = [\"{fx}\"]\n"));
    p.xtask(&["start-bg"]).assert_ok();
    let forced = p.command(&["stop"]).env("XTASK_FORCE", "1").output().expect("stop");
    assert!(String::from_utf8_lossy(&forced.stdout).contains("graceful stop: skipped (--force)"));
    p.xtask(&["start-bg"]).assert_ok();
    let graceful = p
        .command(&["stop", "--no-force"])
        .env("XTASK_FORCE", "1")
        .output()
        .expect("stop");
    assert!(String::from_utf8_lossy(&graceful.stdout).contains("graceful stop: api (SIGTERM)"));
    let bad = p.command(&["stop"]).env("XTASK_FORCE", "maybe").output().expect("stop");
    assert_eq!(bad.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&bad.stderr).contains("XTASK_FORCE=maybe is not a switch; set it to 1 or 0"));
}

#[test]
fn quiet_keeps_results_and_drops_progress() {
    let fx = fixture();
    let p = Project::new(&format!("[services.api]\ncommand = [\"{fx}\"]\n"));
    let run = p.xtask(&["--quiet", "start-bg"]);
    run.assert_ok().assert_contains("1 service(s) up in");
    assert!(
        !run.stdout.contains("started api"),
        "progress printed although quiet\n{run}"
    );
    let stop = p.xtask(&["stop", "-q"]);
    stop.assert_ok();
    assert!(!stop.stdout.contains("[1/5]"), "{stop}");
}

/// A service that dies while CMD runs fails the run: CMD (listening on a port here)
/// is ended, the service is named with the end of its log, the run exits 1. With
/// `--no-abort` CMD finishes and its code is the run's.
#[test]
fn run_fails_fast_when_a_service_dies_while_cmd_runs() {
    let fx = fixture();
    let [cmd_port] = free_ports();
    let p = Project::new(&format!(
        "[services.db]\ncommand = [\"{fx}\", \"--log\", \"db about to crash\", \"--exit-after\", \"300\", \"--exit-code\", \"1\"]\n"
    ));
    let port = cmd_port.to_string();
    let run = p.xtask_within(
        &["run", "--", fx, "--port", &port, "--exit-after", "60000"],
        Duration::from_secs(20),
    );
    run.assert_code(1)
        .assert_contains("service `db` failed while")
        .assert_contains("(exit code 1)")
        .assert_contains("db about to crash");
    assert!(
        std::net::TcpListener::bind(("127.0.0.1", cmd_port)).is_ok(),
        "CMD still runs after the run failed"
    );
    p.assert_nothing_running();

    p.xtask_within(
        &[
            "run",
            "--no-abort",
            "--",
            fx,
            "--exit-after",
            "1000",
            "--exit-code",
            "0",
        ],
        Duration::from_secs(20),
    )
    .assert_ok()
    // The dead service is still reported, and CMD goes on.
    .assert_contains("service `db` failed while")
    .assert_contains("letting it finish (`--no-abort`)");
    p.assert_nothing_running();
}

/// The Makefile as a script uses it: `make status ARGS=--json` prints only JSON (no
/// echoed recipe), a stopped stack is no make error, and `SERVICE` names a service for
/// every target as `SERVICES` does.
#[test]
fn make_prints_pure_json_takes_service_and_a_stopped_stack_is_no_make_error() {
    let fx = fixture();
    let p = Project::new(&format!(
        "[services.web]\ncommand = [\"{fx}\"]\n\n[services.other]\ncommand = [\"{fx}\"]\n"
    ));
    let bin = crate::harness::xtask_bin();
    let workspace = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("..");
    let make = |args: &[&str]| {
        let out = std::process::Command::new("make")
            .arg("--no-print-directory")
            .arg("-C")
            .arg(&workspace)
            // The binary the suite built, taken as it is (never rebuilt by make here).
            .arg(format!("STACKHERD={}", bin.display()))
            .arg("-o")
            .arg(bin)
            .args(args)
            .env("XTASK_CONFIG", p.path("services.toml"))
            .env("NO_COLOR", "1")
            .env_remove("XTASK_PROJECT")
            .env_remove("XTASK_SERVICE")
            .env_remove("MAKEFLAGS")
            .stdin(Stdio::null())
            .output()
            .expect("run make");
        let stdout = String::from_utf8_lossy(&out.stdout).into_owned();
        let stderr = String::from_utf8_lossy(&out.stderr).into_owned();
        (out.status.code(), stdout, stderr)
    };
    let json = |stdout: &str| -> serde_json::Value {
        serde_json::from_str(stdout).unwrap_or_else(|err| panic!("not JSON ({err}):\n{stdout}"))
    };
    let (code, stdout, stderr) = make(&["status", "ARGS=--json"]);
    assert_eq!(code, Some(0), "a stopped stack failed make status:\n{stdout}{stderr}");
    assert!(json(&stdout)["services"].as_array().is_some_and(|s| s.len() == 2));
    // Its hints name make's targets, as the user runs them.
    let (_, stdout, _) = make(&["status"]);
    assert!(stdout.contains("(`make start-bg` attaches a new one)"), "{stdout}");

    let (code, stdout, stderr) = make(&["start-bg", "SERVICE=web"]);
    assert_eq!(code, Some(0), "{stdout}{stderr}");
    let (_, stdout, _) = make(&["status", "ARGS=--json"]);
    let states: Vec<(String, String)> = json(&stdout)["services"]
        .as_array()
        .expect("services")
        .iter()
        .map(|s| {
            (
                s["service"].as_str().unwrap_or("?").into(),
                s["state"].as_str().unwrap_or("?").into(),
            )
        })
        .collect();
    assert!(states.contains(&("web".into(), "running".into())), "{states:?}");
    assert!(states.contains(&("other".into(), "stopped".into())), "{states:?}");
    let (code, stdout, stderr) = make(&["stop", "SERVICE=web"]);
    assert_eq!(code, Some(0), "{stdout}{stderr}");
    p.assert_nothing_running();
}

/// Hints name the command as it was run: through cargo (`cargo xtask`), by the binary's
/// path, or by the prefix a team's alias declares in `XTASK_VIA`.
#[test]
fn hints_name_the_command_as_the_user_ran_it() {
    /// A variable set (Some) or removed (None) for one run.
    type Var<'a> = (&'a str, Option<&'a str>);
    let p = Project::new(&format!("[services.web]\ncommand = [\"{}\"]\n", fixture()));
    let bin = crate::harness::xtask_bin().display().to_string();
    let cases: [(&[Var], String); 3] = [
        (
            &[("CARGO", Some("cargo")), ("XTASK_VIA", None)],
            "cargo xtask start-bg".into(),
        ),
        (&[("CARGO", None), ("XTASK_VIA", None)], format!("{bin} start-bg")),
        (&[("XTASK_VIA", Some("cargo dev"))], "cargo dev start-bg".into()),
    ];
    for (env, expected) in cases {
        let mut command = p.command(&["status"]);
        for (key, value) in env {
            match value {
                Some(value) => command.env(key, value),
                None => command.env_remove(key),
            };
        }
        let out = command.output().expect("status");
        let out = String::from_utf8_lossy(&out.stdout);
        assert!(
            out.contains(&format!("(`{expected}` attaches a new one)")),
            "expected `{expected}`:\n{out}"
        );
    }
}

/// Without cgroups, a service's grandchild that starts a session of its own and clears
/// its environment (no cookie, no group, its parent gone) is re-parented to the process
/// that started the service, before any supervisor has looked at the service's tree:
/// `run`'s teardown and a foreground start's Ctrl+C end it as the service's.
#[test]
fn a_setsid_grandchild_without_the_cookie_is_ended_by_run_and_by_ctrl_c() {
    let toml = "[services.w]\ncommand = \"setsid -f env -i sleep 1000; exec sleep 1001\"\n";
    let p = Project::new(toml).with_env("XTASK_CGROUP", "0");
    p.xtask(&["run", "--", "true"]).assert_ok();
    let left = p.leftovers();
    assert!(left.is_empty(), "run left {left:?}");

    let p = Project::new(toml).with_env("XTASK_CGROUP", "0");
    let start = p.start_in_the_foreground();
    nix::sys::signal::kill(
        nix::unistd::Pid::from_raw(start.id() as i32),
        nix::sys::signal::Signal::SIGINT,
    )
    .expect("Ctrl+C");
    let out = start.wait_with_output().expect("start ends");
    assert!(out.status.success(), "the foreground start did not stop cleanly");
    let left = p.leftovers();
    assert!(left.is_empty(), "Ctrl+C left {left:?}");
}
