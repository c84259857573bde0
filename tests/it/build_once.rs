//! Build steps (issue 25): an identical build step runs once whatever ports its
//! services listen on.

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
