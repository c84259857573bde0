//! Build steps and `check` (issue 25): an identical build step runs once whatever ports
//! its services listen on, and a program that a service's build produces is not
//! missing before the build has run.

use crate::harness::{Project, fixture, free_ports};

/// Three services with ports, in two start levels, with one build step: it runs once,
/// without the `PORT` that xtask gives each service.
#[test]
fn three_services_with_ports_share_one_build_run() {
    let fx = fixture();
    let [p1, p2, p3] = free_ports::<3>();
    let build = r#"build = "echo \"built PORT=$${PORT:-none}\" >> builds.txt""#;
    let p = Project::new(&format!(
        r#"
[services.store]
command = ["{fx}", "--port", "{p1}"]
port = {p1}
{build}

[services.api]
command = ["{fx}", "--port", "{p2}"]
port = {p2}
depends_on = ["store"]
{build}

[services.web]
command = ["{fx}", "--port", "{p3}"]
port = {p3}
{build}
"#
    ));
    p.xtask(&["start-bg"])
        .assert_ok()
        .assert_matches(r"✓ built (store, web|web, store) in \d+");
    let builds = std::fs::read_to_string(p.path("builds.txt")).unwrap_or_default();
    assert_eq!(builds, "built PORT=none\n", "the shared build did not run once");
}

/// What a build declares is part of its identity: the same command with another `env`
/// is another step.
#[test]
fn a_build_with_another_declared_env_runs_on_its_own() {
    let p = Project::new(
        r#"
[services.a]
command = "sleep 100"
build = "echo \"built $${FLAVOR:-plain}\" >> builds.txt"

[services.b]
command = "sleep 100"
build = { command = "echo \"built $${FLAVOR:-plain}\" >> builds.txt", env = { FLAVOR = "salty" } }

[services.c]
command = "sleep 100"
build = "echo \"built $${FLAVOR:-plain}\" >> builds.txt"
"#,
    );
    p.xtask(&["build"]).assert_ok();
    let mut builds: Vec<String> = std::fs::read_to_string(p.path("builds.txt"))
        .unwrap_or_default()
        .lines()
        .map(str::to_string)
        .collect();
    builds.sort();
    assert_eq!(builds, ["built plain", "built salty"]);
}

/// A service whose program its build makes: `bin/api`, a copy of the fixture.
fn built_program(build: Option<&str>) -> Project {
    let [port] = free_ports::<1>();
    let build = build.map(|b| format!("build = \"{b}\"")).unwrap_or_default();
    Project::new(&format!(
        r#"
[services.api]
command = ["bin/api", "--port", "{port}"]
port = {port}
{build}
"#
    ))
}

/// A fresh clone: the program is not built yet, and `check` says its build makes it
/// instead of failing; the start then builds it and finds it.
#[test]
fn check_passes_a_program_that_the_build_produces() {
    let fx = fixture();
    let p = built_program(Some(&format!("mkdir -p bin && cp {fx} bin/api")));
    p.xtask(&["check"])
        .assert_ok()
        .assert_contains("api: program `bin/api` not built yet: built by `build` (`mkdir -p bin && cp")
        .assert_contains("all checks passed");
    assert!(!p.path("bin/api").exists(), "check ran the build");
    p.xtask(&["start-bg"]).assert_ok();
    p.xtask(&["check"]).assert_ok().assert_contains("api: ready");
}

/// Without a build the missing program is still a problem; with a build that does not
/// make it, `check` trusts the build, and the start finds it missing after the build.
#[test]
fn a_missing_program_without_a_build_or_after_it_is_an_error() {
    let p = built_program(None);
    p.xtask(&["check"])
        .assert_code(1)
        .assert_contains("api: program `bin/api` not found in");
    let p = built_program(Some("true"));
    p.xtask(&["check"])
        .assert_ok()
        .assert_contains("built by `build` (`true`)");
    p.xtask(&["start-bg"])
        .assert_code(1)
        .assert_contains("api: program `bin/api` not found in")
        .assert_contains("although its `build` (`true`) should produce it");
}
