//! Watch mode: a change to a watched file runs the service's build, then restarts it
//! with its health check; a failed build leaves it running; changes during a build
//! coalesce; `restart_with` dependents follow; ignore rules hold.

use std::process::Stdio;
use std::time::Duration;

use nix::sys::signal::{Signal, kill};
use nix::unistd::Pid;

use crate::harness::{Project, fixture, free_ports, is_alive, wait_for};

const LONG: Duration = Duration::from_secs(20);

fn status_json(p: &Project, service: &str) -> serde_json::Value {
    let run = p.xtask(&["status", "--json", service]);
    let json: serde_json::Value = serde_json::from_str(&run.stdout).unwrap_or_default();
    json["services"][0].clone()
}

/// Saves `text` as `relative` the way many editors do, by renaming a new file over it:
/// one file event, so that one save is one batch however loaded the machine is.
fn save(p: &Project, relative: &str, text: &str) {
    p.write("edit.tmp", text);
    std::fs::rename(p.path("edit.tmp"), p.path(relative)).expect("rename the saved file into place");
}

fn builds(p: &Project) -> usize {
    std::fs::read_to_string(p.path("builds"))
        .unwrap_or_default()
        .lines()
        .count()
}

/// A service on a port that watches `src`, with a build that counts its runs in
/// `builds`, waits while the file `hold` exists and fails while `broken` does.
fn watched_web(extra: &str) -> (Project, u16) {
    let [port] = free_ports();
    let fx = fixture();
    let p = Project::new(&format!(
        r#"
[project]
watch_debounce = "50ms"

[services.web]
command = ["{fx}", "--port", "{port}"]
port = {port}
build = "echo built >> builds; while test -f hold; do sleep 0.01; done; if test -f broken; then echo 'error: it is broken' >&2; exit 1; fi"
watch = ["src"]
{extra}
"#
    ));
    p.write("src/main.txt", "one");
    p.xtask(&["start-bg"]).assert_ok();
    assert_eq!(builds(&p), 1, "the build runs once before the start");
    (p, port)
}

#[test]
fn a_change_to_a_watched_file_rebuilds_then_restarts_with_a_new_pid() {
    let (p, port) = watched_web("");
    let first = p.pid_of("web");
    save(&p, "src/main.txt", "two");
    p.wait_for_new_pid("web", first);
    wait_for("web healthy again", LONG, || {
        status_json(&p, "web")["health"] == "healthy"
    });
    assert_eq!(builds(&p), 2, "one build per change");
    assert!(!is_alive(first), "the old instance still runs");
    let log = p.monitor_log();
    let order = [
        "web: src/main.txt changed; building: echo built",
        "web: built in",
        "web: started (pid",
        "web: healthy after",
    ];
    let mut at = 0;
    for step in order {
        let found = log[at..].find(step);
        assert!(found.is_some(), "{step:?} missing, or out of order, in:\n{log}");
        at += found.unwrap_or(0);
    }
    assert!(
        std::net::TcpStream::connect(("127.0.0.1", port)).is_ok(),
        "nothing listens"
    );
    assert_eq!(status_json(&p, "web")["last_build"]["ok"], true);
}

#[test]
fn a_failed_build_keeps_the_running_instance_and_says_so() {
    let (p, _) = watched_web("");
    let first = p.pid_of("web");
    p.write("broken", "");
    save(&p, "src/main.txt", "two");
    wait_for("the failed build", LONG, || {
        p.monitor_log().contains("web: build failed")
    });
    assert_eq!(p.pid_of("web"), first, "a failed build restarted the service");
    assert!(is_alive(first), "a failed build took the service down");
    assert!(
        p.log("web").contains("error: it is broken"),
        "the compiler's output is not in the log"
    );
    p.xtask(&["status"])
        .assert_ok()
        .assert_matches(r"running \(build failed \d+s ago\)");
    assert_eq!(status_json(&p, "web")["last_build"]["ok"], false);

    std::fs::remove_file(p.path("broken")).expect("fix the build");
    save(&p, "src/main.txt", "three");
    p.wait_for_new_pid("web", first);
    wait_for("the fixed build recorded", LONG, || {
        status_json(&p, "web")["last_build"]["ok"] == true
    });
}

#[test]
fn changes_during_a_build_coalesce_into_one_more_build() {
    let (p, _) = watched_web("");
    let first = p.pid_of("web");
    p.write("hold", "");
    save(&p, "src/main.txt", "two");
    wait_for("the second build to start", LONG, || builds(&p) == 2);
    save(&p, "src/main.txt", "three");
    save(&p, "src/other.txt", "four");
    wait_for("the change during the build to be seen", LONG, || {
        p.monitor_log()
            .contains("files changed during the build; one more build follows")
    });
    std::fs::remove_file(p.path("hold")).expect("release the build");
    p.wait_for_new_pid("web", first);
    wait_for("web healthy again", LONG, || {
        status_json(&p, "web")["health"] == "healthy"
    });
    assert_eq!(
        builds(&p),
        3,
        "two changes during a build gave more than one more build"
    );
    assert_eq!(
        p.monitor_log().matches("web: built in").count(),
        1,
        "{}",
        p.monitor_log()
    );
}

#[test]
fn ignored_files_do_not_rebuild_and_restart_with_dependents_follow() {
    let fx = fixture();
    let p = Project::new(&format!(
        r#"
[project]
watch_debounce = "50ms"

[services.db]
command = ["{fx}"]
watch = ["src/**/*.txt"]
watch_ignore = ["scratch.txt"]

[services.all]
command = ["{fx}"]
watch = ["src"]

[services.api]
command = ["{fx}"]
depends_on = ["db"]
restart_with = true

[services.web]
command = ["{fx}"]
depends_on = ["api"]
restart_with = true

[services.other]
command = ["{fx}"]
depends_on = ["db"]
"#
    ));
    p.write("src/deep/a.txt", "one");
    p.write(".gitignore", "src/generated/\n");
    p.xtask(&["start-bg"]).assert_ok();
    let before = |s: &str| p.pid_of(s);
    let (db, all, api, web, other) = (
        before("db"),
        before("all"),
        before("api"),
        before("web"),
        before("other"),
    );

    // Ignored by watch_ignore, by .gitignore, and not matching the glob: `all` sees
    // them in the same batch and restarts; `db` must not.
    save(&p, "src/deep/scratch.txt", "x");
    p.write("src/generated/b.txt", "x");
    save(&p, "src/deep/c.rs", "x");
    wait_for("all to restart", LONG, || before("all") != all && before("all") != 0);
    assert_eq!(before("db"), db, "an ignored change restarted db:\n{}", p.monitor_log());
    let log = p.monitor_log();
    assert!(
        !log.lines().any(|l| l.contains(" db: ") && l.contains(" changed")),
        "{log}"
    );

    save(&p, "src/deep/a.txt", "two");
    wait_for("db, api and web to restart", LONG, || {
        [("db", db), ("api", api), ("web", web)]
            .iter()
            .all(|(s, old)| before(s) != *old && before(s) != 0)
    });
    assert_eq!(before("other"), other, "a dependent without restart_with restarted");
    let log = p.monitor_log();
    let (db_healthy, api_started) = (log.rfind("db: healthy after"), log.rfind("api: started (pid"));
    assert!(
        db_healthy.is_some() && api_started.is_some() && db_healthy < api_started,
        "api did not wait for db:\n{log}"
    );
    let (api_healthy, web_started) = (log.rfind("api: healthy after"), log.rfind("web: started (pid"));
    assert!(
        api_healthy.is_some() && web_started.is_some() && api_healthy < web_started,
        "web did not wait for api:\n{log}"
    );
    wait_for("everything running", LONG, || {
        ["db", "api", "web"]
            .iter()
            .all(|s| status_json(&p, s)["state"] == "running")
    });
}

#[test]
fn a_foreground_start_rebuilds_and_shows_the_build_in_its_stream() {
    let fx = fixture();
    let p = Project::new(&format!(
        r#"
[project]
watch_debounce = "50ms"

[services.web]
command = ["{fx}"]
build = "echo compiling the web"
watch = ["src"]
"#
    ));
    p.write("src/main.txt", "one");
    let child = p.command(&["start"]).stdout(Stdio::piped()).spawn().expect("start");
    wait_for("web up", LONG, || {
        p.pid_of("web") != 0 && status_json(&p, "web")["state"] == "running"
    });
    let first = p.pid_of("web");
    save(&p, "src/main.txt", "two");
    p.wait_for_new_pid("web", first);
    wait_for("web running again", LONG, || {
        status_json(&p, "web")["state"] == "running"
    });
    kill(Pid::from_raw(child.id() as i32), Signal::SIGINT).expect("Ctrl+C");
    let out = child.wait_with_output().expect("start ends");
    let stdout = String::from_utf8_lossy(&out.stdout);
    for expected in [
        "web ▸ src/main.txt changed; building: echo compiling the web",
        "web | compiling the web",
        "web ▸ built in",
    ] {
        assert!(stdout.contains(expected), "missing {expected:?} in:\n{stdout}");
    }
    p.assert_nothing_running();
}
