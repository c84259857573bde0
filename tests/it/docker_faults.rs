//! A `docker` that misbehaves, as a wedged engine or a broken client does: a script
//! first on PATH. None of these needs an engine: the stacks they start are processes.

use std::time::Duration;

use nix::sys::signal::{Signal, kill};
use nix::unistd::Pid;

use crate::containers::IMAGE;
use crate::harness::{Project, fixture, is_alive, wait_for};

/// A project with a container service (never started) and a process service, and the
/// PATH under which `docker` is `script` (`{pids}` in it: a file to append PIDs to).
fn with_fake_docker(script: &str) -> (Project, String) {
    let fx = fixture();
    let p = Project::new(&format!(
        "[services.cache]\nimage = \"{IMAGE}\"\n\n[services.api]\ncommand = [\"{fx}\"]\n"
    ));
    let pids = p.path("docker-pids");
    p.write(
        "fake/docker",
        &format!(
            "#!/bin/sh\n{}",
            script.replace("{pids}", &format!("'{}'", pids.display()))
        ),
    );
    use std::os::unix::fs::PermissionsExt;
    std::fs::set_permissions(p.path("fake/docker"), std::fs::Permissions::from_mode(0o755)).expect("chmod");
    let path = format!(
        "{}:{}",
        p.path("fake").display(),
        std::env::var("PATH").unwrap_or_default()
    );
    (p, path)
}

/// The PIDs the fake docker wrote.
fn pids(p: &Project) -> Vec<i32> {
    std::fs::read_to_string(p.path("docker-pids"))
        .unwrap_or_default()
        .lines()
        .filter_map(|l| l.trim().parse().ok())
        .collect()
}

#[track_caller]
fn assert_all_gone(pids: &[i32], what: &str) {
    assert!(!pids.is_empty(), "no {what} was started");
    for &pid in pids {
        wait_for(&format!("{what} {pid} to be gone"), Duration::from_secs(5), || {
            !is_alive(pid)
        });
    }
}

/// An engine that hangs: `stop` still stops the processes and finishes within the
/// bound of the one question it asks, the hung client's process group killed; and it
/// says that the containers may still run (exit 1), since nobody could tell.
#[test]
fn a_docker_that_never_answers_does_not_hang_stop() {
    let (p, path) = with_fake_docker("echo $$ >> {pids}\nexec sleep 600\n");
    p.xtask(&["start-bg", "api"]).assert_ok();
    let mut stop = p.command(&["stop"]);
    stop.env("PATH", &path);
    let out = Project::run_within(stop, &["stop"], Duration::from_secs(60));
    let text = out.output();
    assert_eq!(out.code, Some(1), "{text}");
    assert!(
        text.contains(
            "phase 4 could not run: no Docker engine answers (`docker version` did not answer within 10s and was killed)"
        ),
        "{text}"
    );
    assert!(text.contains("the project's containers may still run"), "{text}");
    // The bound of `docker version` is 10 s; the processes' stop takes a moment.
    assert!(out.took < Duration::from_secs(15), "stop took {:?}\n{text}", out.took);
    assert_all_gone(&pids(&p), "hung docker");
    p.assert_nothing_running();
}

/// Ctrl+C while a docker call hangs: the command ends at once and takes the call with
/// it, instead of waiting out the bound.
#[test]
fn ctrl_c_ends_a_hung_docker_call() {
    let (p, path) = with_fake_docker("echo $$ >> {pids}\nexec sleep 600\n");
    let mut start = p.command(&["start-bg", "cache"]);
    start
        .env("PATH", &path)
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::null());
    let mut child = start.spawn().expect("start-bg");
    wait_for("the hung docker", Duration::from_secs(10), || !pids(&p).is_empty());
    let interrupted = std::time::Instant::now();
    kill(Pid::from_raw(child.id() as i32), Signal::SIGINT).expect("SIGINT");
    let mut ended = None;
    wait_for("start-bg to end after Ctrl+C", Duration::from_secs(5), || {
        ended = child.try_wait().expect("wait");
        ended.is_some()
    });
    assert!(interrupted.elapsed() < Duration::from_secs(5));
    assert_ne!(
        ended.and_then(|s| s.code()),
        Some(0),
        "an interrupted start-bg succeeded"
    );
    assert_all_gone(&pids(&p), "hung docker");
    p.assert_nothing_running();
}

/// A docker client that leaves a process behind holding its output (a plugin, a
/// helper): the call ends a second after the client, what it left is killed, and what
/// the client printed counts.
#[test]
fn what_a_docker_call_leaves_holding_its_output_is_killed() {
    let (p, path) = with_fake_docker(
        "sleep 600 &\necho $! >> {pids}\ncase \"$1\" in ps) echo 'fake-container cache' ;; *) echo 27.0 ;; esac\n",
    );
    p.xtask(&["start-bg", "api"]).assert_ok();
    let mut stop = p.command(&["stop"]);
    stop.env("PATH", &path);
    let out = Project::run_within(stop, &["stop"], Duration::from_secs(60));
    // What the client printed before it ended is kept: the container it listed is removed.
    out.assert_ok().assert_contains("removed container fake-container");
    assert_all_gone(&pids(&p), "process left by docker");
    p.assert_nothing_running();
}

/// `status` of a stack with a compose file while the engine hangs: it finishes within
/// one bound (later questions fail at once) and says that Docker's side is unknown.
#[test]
fn status_says_when_docker_did_not_answer() {
    let (p, path) = with_fake_docker("echo $$ >> {pids}\nexec sleep 600\n");
    p.write("compose.yaml", "services:\n  db:\n    image: postgres\n");
    let toml = std::fs::read_to_string(p.path("services.toml")).expect("read");
    p.write(
        "services.toml",
        &format!("[project]\ncompose_file = \"compose.yaml\"\n\n{toml}"),
    );
    let mut status = p.command(&["status"]);
    status.env("PATH", &path);
    let out = Project::run_within(status, &["status"], Duration::from_secs(60));
    let text = out.output();
    assert!(
        text.contains(
            "Docker did not answer within 10s: what it says of the containers and compose services is unknown"
        ),
        "{text}"
    );
    assert!(out.took < Duration::from_secs(25), "status took {:?}\n{text}", out.took);
    assert_all_gone(&pids(&p), "hung docker");
    p.assert_nothing_running();
}
