//! Containers and compose tell the truth (issue 25): a container's last lines reach its
//! log, `start-bg` reports wall-clock time, `logs` reads compose services, kept compose
//! volumes are listed, and `status` runs no compose tool when the file has not changed.

use std::time::{Duration, Instant};

use crate::containers::{IMAGE, docker_ready, labelled};
use crate::harness::{Project, fixture, wait_for};
use crate::log_follow::follow_ends_when_its_reader_goes;

/// The line a container prints in its SIGTERM handler is in its log once `stop`
/// returns: the log copier ends after its container, not before.
#[test]
fn a_containers_last_line_is_in_its_log_after_stop() {
    if !docker_ready() {
        return;
    }
    let p = Project::new(&format!(
        r#"
[services.cache]
image = "{IMAGE}"
command = ["--on-sigterm", "cache says goodbye", "--log", "cache ready"]
"#
    ));
    p.xtask(&["start-bg"]).assert_ok();
    wait_for("the log to follow the container", Duration::from_secs(10), || {
        p.log("cache").contains("cache ready")
    });
    let stop = p.xtask(&["stop"]);
    stop.assert_ok();
    let log = p.log("cache");
    assert!(
        log.contains("cache says goodbye"),
        "the last line is lost:\n{log}\n{stop}"
    );
    stop.assert_contains("cache (docker stop)");
    assert_eq!(labelled(&p), Vec::<String>::new(), "labelled Docker objects remain");
}

/// `logs -f` of a quiet container, and of a quiet compose service, ends when its reader
/// goes (`| head -1`), not when the container next writes.
#[test]
fn logs_follow_of_a_quiet_container_ends_when_its_reader_goes() {
    if !docker_ready() {
        return;
    }
    let p = compose_project();
    let _volumes = RemovesVolumes(&p);
    p.write(
        "services.toml",
        &format!(
            "{}\n[services.cache]\nimage = \"{IMAGE}\"\ncommand = [\"--log\", \"cache ready\"]\n",
            std::fs::read_to_string(p.path("services.toml")).expect("services.toml")
        ),
    );
    p.xtask(&["start-bg"]).assert_ok();
    follow_ends_when_its_reader_goes(&p, "cache", "cache ready");
    follow_ends_when_its_reader_goes(&p, "queue", "queue ready");
    p.xtask(&["stop", "--volumes"]).assert_ok();
    assert_eq!(labelled(&p), Vec::<String>::new(), "labelled Docker objects remain");
}

/// The time `start-bg` reports for the whole start is the wall-clock time the user
/// waited: it counts a 3 s build, which the monitor runs before the launch.
#[test]
fn start_bg_reports_the_wall_clock_time_of_the_start() {
    let fx = fixture();
    let p = Project::new(&format!("[services.api]\ncommand = [\"{fx}\"]\nbuild = \"sleep 3\"\n"));
    let began = Instant::now();
    let run = p.xtask(&["start-bg"]);
    let waited = began.elapsed();
    run.assert_ok();
    let reported = reported_up_in(&run.stdout).unwrap_or_else(|| panic!("no `up in` line:\n{run}"));
    assert!(
        reported >= Duration::from_secs(3),
        "reported {reported:?} for a 3 s build:\n{run}"
    );
    // Shown to the hundredth of a second, rounded: up to 5 ms over what was waited.
    assert!(
        reported <= waited + Duration::from_millis(5),
        "reported {reported:?}, but the test waited {waited:?}:\n{run}"
    );
    p.xtask(&["stop"]).assert_ok();
}

/// The duration of "N service(s) up in D".
fn reported_up_in(out: &str) -> Option<Duration> {
    let text = out
        .lines()
        .find_map(|l| l.split_once(" up in ").map(|(_, d)| d.trim()))?;
    if let Some(ms) = text.strip_suffix("ms") {
        return ms.parse().ok().map(Duration::from_millis);
    }
    if let Some((m, s)) = text.split_once("m ") {
        let secs: u64 = m.parse::<u64>().ok()? * 60 + s.trim_end_matches('s').parse::<u64>().ok()?;
        return Some(Duration::from_secs(secs));
    }
    text.strip_suffix('s')?.parse().ok().map(Duration::from_secs_f64)
}

/// A process service and a compose file of one service, `queue`, which logs a line and keeps
/// its data in a named compose volume.
fn compose_project() -> Project {
    let fx = fixture();
    let p = Project::new(&format!(
        "[project]\ncompose_file = \"compose.yaml\"\n\n[services.api]\ncommand = [\"{fx}\"]\n"
    ));
    p.write(
        "compose.yaml",
        &format!(
            "services:\n  queue:\n    image: {IMAGE}\n    command: [\"--log\", \"queue ready\"]\n    volumes:\n      - qdata:/data\nvolumes:\n  qdata:\n"
        ),
    );
    p
}

/// Takes the project's volumes away even when the test fails: the harness's own stop
/// keeps them, as every stop without `--volumes` does.
struct RemovesVolumes<'p>(&'p Project);

impl Drop for RemovesVolumes<'_> {
    fn drop(&mut self) {
        let _ = self.0.xtask(&["stop", "--volumes"]);
    }
}

#[test]
fn logs_shows_a_compose_service_by_name() {
    if !docker_ready() {
        return;
    }
    let p = compose_project();
    let _volumes = RemovesVolumes(&p);
    p.xtask(&["start-bg"]).assert_ok();
    wait_for(
        "the compose service's line in `logs queue`",
        Duration::from_secs(20),
        || p.xtask(&["logs", "queue"]).stdout.contains("queue ready"),
    );
    p.xtask(&["logs", "queue"]).assert_ok();
    p.xtask(&["stop", "--volumes"]).assert_ok();
}

#[test]
fn stop_lists_the_compose_volumes_it_keeps() {
    if !docker_ready() {
        return;
    }
    let p = compose_project();
    let _volumes = RemovesVolumes(&p);
    p.xtask(&["start-bg"]).assert_ok();
    p.xtask(&["stop"])
        .assert_ok()
        .assert_matches(r"kept volume \S+_qdata \(`stop --volumes` removes it\)");
    p.xtask(&["stop", "--volumes"])
        .assert_ok()
        .assert_matches(r"removed volume \S+_qdata");
}

/// Where the compose tool is on PATH (`docker` for the plugin, `docker-compose`), a
/// wrapper of the same name logs each run of it to `runs`, then runs the real one.
fn counting_compose_tool(p: &Project) -> (String, std::path::PathBuf) {
    let bin = p.path("wrapped-bin");
    let runs = p.path("compose-runs.txt");
    for (name, only_if) in [("docker", "[ \"$1\" = compose ] && "), ("docker-compose", "")] {
        let found = std::process::Command::new("sh")
            .args(["-c", &format!("command -v {name}")])
            .output()
            .expect("sh");
        let real = String::from_utf8_lossy(&found.stdout).trim().to_string();
        if real.is_empty() {
            continue;
        }
        p.write(
            &format!("wrapped-bin/{name}"),
            &format!(
                "#!/bin/sh\n{only_if}echo \"{name} $*\" >> '{}'\nexec '{real}' \"$@\"\n",
                runs.display()
            ),
        );
        use std::os::unix::fs::PermissionsExt;
        std::fs::set_permissions(bin.join(name), std::fs::Permissions::from_mode(0o755)).expect("chmod");
    }
    let path = format!("{}:{}", bin.display(), std::env::var("PATH").unwrap_or_default());
    (path, runs)
}

/// `status` of a project with a compose file runs no compose tool while the file is
/// unchanged: the service names are cached under a key of its contents. An edit of the
/// file is seen (one run), then cached again.
#[test]
fn status_runs_no_compose_tool_while_the_compose_file_is_unchanged() {
    if !docker_ready() {
        return;
    }
    let p = compose_project();
    let _volumes = RemovesVolumes(&p);
    p.xtask(&["start-bg"]).assert_ok();
    let (path, runs) = counting_compose_tool(&p);
    let status = |expect: &str| {
        let _ = std::fs::remove_file(&runs);
        let out = p.command(&["status"]).env("PATH", &path).output().expect("status");
        let text = String::from_utf8_lossy(&out.stdout).to_string();
        assert!(text.contains(expect), "status does not show {expect}:\n{text}");
        std::fs::read_to_string(&runs).unwrap_or_default()
    };
    let ran = status("queue");
    assert_eq!(ran, "", "status ran the compose tool for an unchanged file");
    let ran = status("queue");
    assert_eq!(ran, "", "a second status ran the compose tool");

    // A second service: the names change, and the next status finds them.
    let text = std::fs::read_to_string(p.path("compose.yaml")).expect("compose.yaml");
    p.write(
        "compose.yaml",
        &text.replace(
            "volumes:\n  qdata:",
            &format!("  extra:\n    image: {IMAGE}\nvolumes:\n  qdata:"),
        ),
    );
    let ran = status("extra");
    assert!(
        ran.contains("config --services"),
        "the changed file was not read: {ran:?}"
    );
    let ran = status("extra");
    assert_eq!(
        ran, "",
        "status ran the compose tool again for the changed file, now cached"
    );
    p.xtask(&["stop", "--volumes"]).assert_ok();
}
