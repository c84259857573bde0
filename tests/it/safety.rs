//! Nothing wrongly killed, nothing disturbed: foreign PIDs, held ports, the lock, damaged
//! state.

use std::net::TcpListener;
use std::time::Duration;

use crate::harness::{Bystander, Project, fixture, free_ports, is_alive, start_time, wait_for};

fn one_service(extra: &str) -> Project {
    let fx = fixture();
    Project::new(&format!("{extra}\n[services.api]\ncommand = [\"{fx}\"]\n"))
}

/// A record naming a live process that is not ours: same PID, another start time.
fn forge_record(p: &Project, service: &str, pid: i32, start_time: u64) {
    let record = serde_json::json!({
        "service": service, "pid": pid, "pgid": pid, "start_time": start_time,
        "command": "forged", "started_at_ms": 0, "restarts": 0, "state": "healthy",
        "healthy_after_ms": 1, "last_exit": null, "log": p.path(".xtask/logs/api.log"), "ports": []
    });
    p.write(&format!(".xtask/run/{service}.json"), &record.to_string());
    p.write(&format!(".xtask/run/{service}.pid"), &format!("{pid}\n"));
}

#[test]
fn a_record_whose_pid_belongs_to_another_program_is_never_signalled() {
    let p = one_service("");
    let bystander = Bystander::sleep();
    forge_record(&p, "api", bystander.pid(), start_time(bystander.pid()) + 1);

    p.xtask(&["status"])
        .assert_code(1)
        .assert_contains("now belongs to another program");
    p.xtask(&["check"]).assert_code(1).assert_contains(&format!(
        "stale record of api: pid {} now belongs to another program (sleep 1000); run `cargo xtask cleanup`",
        bystander.pid()
    ));
    p.xtask(&["stop"]).assert_ok();
    assert!(is_alive(bystander.pid()), "stop signalled a process that is not ours");
    forge_record(&p, "api", bystander.pid(), start_time(bystander.pid()) + 1);
    p.xtask(&["stop", "--force", "api"]).assert_ok();
    forge_record(&p, "api", bystander.pid(), start_time(bystander.pid()) + 1);
    p.xtask(&["cleanup"])
        .assert_ok()
        .assert_contains("removed 1 stale record(s)");
    forge_record(&p, "api", bystander.pid(), start_time(bystander.pid()) + 1);
    p.xtask(&["start-bg"])
        .assert_ok()
        .assert_contains("[5/5] verify: removed 1 stale record(s)");
    p.xtask(&["stop"]).assert_ok();
    assert!(
        is_alive(bystander.pid()),
        "a command signalled a process that is not ours"
    );
}

#[test]
fn a_port_held_outside_the_project_is_reported_with_its_holder() {
    let [port] = free_ports();
    let fx = fixture();
    let p = Project::new(&format!(
        "[services.web]\ncommand = [\"{fx}\", \"--port\", \"{port}\"]\nport = {port}\n"
    ));
    let _held = TcpListener::bind(("127.0.0.1", port)).expect("hold the port");
    let me = std::process::id();
    let expected = format!("port {port} is held by pid {me} (");
    p.xtask(&["check"]).assert_code(1).assert_contains(&expected);
    p.xtask(&["start-bg"])
        .assert_code(1)
        .assert_contains(&expected)
        .assert_contains("stop that process or change the port in services.toml");
    p.assert_nothing_running();
}

/// A health check's port answered by a process the service does not own does not make
/// it healthy: the start fails and names the stranger.
#[test]
fn a_health_port_answered_by_a_stranger_is_not_health() {
    let [port] = free_ports();
    let fx = fixture();
    let p = Project::new(&format!(
        "[services.web]\ncommand = [\"{fx}\"]\nhealth = {{ port = {port}, interval = \"50ms\", retries = 4 }}\n"
    ));
    let _stranger = TcpListener::bind(("127.0.0.1", port)).expect("hold the port");
    let me = std::process::id();
    p.xtask(&["start-bg"])
        .assert_code(1)
        .assert_contains(&format!("port {port} answered by pid {me} ("))
        .assert_contains("not part of web");
    p.assert_nothing_running();

    // The same check passes once the service itself listens there.
    let [own] = free_ports();
    let p = Project::new(&format!(
        "[services.web]\ncommand = [\"{fx}\", \"--port\", \"{own}\"]\nhealth = {{ port = {own}, interval = \"50ms\" }}\n"
    ));
    p.xtask(&["start-bg"]).assert_ok();
    p.xtask(&["stop"]).assert_ok();
}

/// Ports are first tried with binds to the wildcard addresses: a listener on the IPv6
/// loopback only must make them fail too, and a port that was listened on and closed
/// (its connections in TIME_WAIT) must count as free.
#[test]
fn an_ipv6_only_listener_holds_its_port_and_a_closed_one_does_not() {
    let [port] = free_ports();
    let fx = fixture();
    let p = Project::new(&format!(
        "[services.web]\ncommand = [\"{fx}\", \"--port\", \"{port}\"]\nport = {port}\n"
    ));
    let held = TcpListener::bind(("::1", port)).expect("listen on the IPv6 loopback");
    // The server end closes first, which leaves a TIME_WAIT entry on `port`.
    let client = std::net::TcpStream::connect(("::1", port)).expect("connect");
    drop(held.accept().expect("accept"));
    drop(client);
    let me = std::process::id();
    p.xtask(&["check"])
        .assert_code(1)
        .assert_contains(&format!("port {port} is held by pid {me} ("));
    drop(held);
    p.xtask(&["check"]).assert_ok().assert_contains("web: ready");
}

#[test]
fn a_pid_file_holding_garbage_is_a_stale_record_that_cleanup_removes() {
    let p = one_service("");
    p.write(".xtask/run/api.pid", "not a pid\n");
    p.xtask(&["status"])
        .assert_code(1)
        .assert_contains("api: stale record: a PID file (`not a pid`) without a record");
    p.xtask(&["check"])
        .assert_code(1)
        .assert_contains("untrustworthy state file of api");
    p.xtask(&["cleanup"])
        .assert_ok()
        .assert_contains("removed 1 stale record(s)");
    p.xtask(&["start-bg"]).assert_ok();
    p.xtask(&["status"]).assert_ok();
}

#[test]
fn a_garbage_record_is_reported_not_trusted() {
    let p = one_service("");
    p.write(".xtask/run/api.json", "{ this is not json");
    p.xtask(&["status"])
        .assert_code(1)
        .assert_contains("it is not a valid record");
    p.xtask(&["start-bg"])
        .assert_ok()
        .assert_contains("[5/5] verify: removed 1 stale record(s)");
}

#[test]
fn a_second_start_bg_waits_for_the_lock_then_names_its_holder() {
    let [port] = free_ports();
    let fx = fixture();
    let p = Project::new(&format!(
        "[services.slow]\ncommand = [\"{fx}\", \"--port\", \"{port}\", \"--startup-delay\", \"6000\"]\nport = {port}\n"
    ));
    let first = p
        .command(&["start-bg"])
        .stdout(std::process::Stdio::piped())
        .spawn()
        .expect("first start-bg");
    wait_for("the first start-bg to take the lock", Duration::from_secs(10), || {
        !p.service_processes().is_empty()
    });
    let monitor = p.monitor_pid().expect("the first start-bg's monitor");
    let second = p.xtask(&["start-bg"]);
    second.assert_code(75).assert_matches(&format!(
        r"`pid {monitor}: xtask start-bg \(monitor\)` holds the lock on .*/\.xtask/lock"
    ));
    let first = first.wait_with_output().expect("first finishes");
    assert_eq!(first.status.code(), Some(0));
    let stdout = String::from_utf8_lossy(&first.stdout);
    assert!(
        stdout.contains("waiting for slow (2."),
        "a slow start should say what it waits for:\n{stdout}"
    );
    let error = format!("port {port}; last error: 127.0.0.1:{port}: Connection refused");
    assert!(
        stdout.contains(&error),
        "a slow start should show the probe error:\n{stdout}"
    );
    p.xtask(&["status"]).assert_ok();
}

#[test]
fn an_unwritable_state_directory_is_a_clear_error() {
    let p = one_service("[project]\nstate_dir = \"blocker/state\"\n");
    p.write("blocker", "a file where a directory should be");
    p.xtask(&["start-bg"])
        .assert_code(73)
        .assert_contains("cannot write the state directory at")
        .assert_contains("set `state_dir` in [project]");
    p.assert_nothing_running();
}

#[test]
fn a_program_not_found_is_reported_before_anything_starts() {
    let fx = fixture();
    let p = Project::new(&format!(
        "[services.ok]\ncommand = [\"{fx}\"]\n\n[services.bad]\ncommand = \"no-such-program-xyz --flag\"\ndepends_on = [\"ok\"]\n"
    ));
    let expected = "bad: program `no-such-program-xyz` not found on PATH; install it or fix `command`";
    p.xtask(&["check"]).assert_code(1).assert_contains(expected);
    p.xtask(&["start-bg"]).assert_code(1).assert_contains(expected);
    p.assert_nothing_running();
}

#[test]
fn a_missing_cwd_is_reported() {
    let p = one_service("");
    let fx = fixture();
    p.write(
        "services.toml",
        &format!("[services.api]\ncommand = [\"{fx}\"]\ncwd = \"nope\"\n"),
    );
    p.xtask(&["check"])
        .assert_code(1)
        .assert_contains("api: working directory")
        .assert_contains("nope does not exist");
}

#[test]
fn another_project_running_beside_is_never_touched() {
    let mine = one_service("");
    let theirs = one_service("");
    theirs.xtask(&["start-bg"]).assert_ok();
    mine.xtask(&["start-bg"]).assert_ok();
    mine.xtask(&["stop"]).assert_ok();
    mine.xtask(&["cleanup"]).assert_ok();
    assert_eq!(
        theirs.service_processes().len(),
        1,
        "stopping one project touched another"
    );
    theirs.xtask(&["status"]).assert_ok();
}

#[test]
fn a_service_name_from_another_process_names_no_file_and_prints_as_data() {
    let p = one_service("");
    // Relative to the state directory's run/, this name is the file x/t.json of the
    // project, outside the state directory.
    p.write("x/t.json", "the user's data");
    let holder = Bystander::with_cookie(&p, "../../x/t", "\u{1b}]0;owned\u{7}\u{1b}[2Jsleep");
    let pid = holder.pid();
    wait_for("the cookie holder to start", Duration::from_secs(10), || {
        p.cookie_holders().iter().any(|(h, _, _)| *h == pid)
    });
    let dry = p.xtask(&["cleanup", "--dry-run"]);
    dry.assert_ok().assert_contains(&format!(
        "would stop pid {pid} (of a service it does not name): \\e]0;owned\\a\\e[2Jsleep"
    ));
    assert!(
        !dry.output().contains('\u{1b}'),
        "an escape code reached the terminal:\n{dry}"
    );
    let stop = p.xtask(&["stop"]);
    stop.assert_ok();
    assert!(
        !stop.output().contains('\u{1b}'),
        "an escape code reached the terminal:\n{stop}"
    );
    assert!(!is_alive(pid), "stop left the cookie holder running:\n{stop}");
    assert!(
        p.path("x/t.json").exists(),
        "stop removed a file outside the state directory"
    );
}

#[test]
fn a_forged_monitor_record_gets_nothing_killed() {
    let p = one_service("");
    let bystander = Bystander::sleep();
    let record = serde_json::json!({
        "pid": bystander.pid(), "start_time": start_time(bystander.pid()),
        "foreground": false, "started_at_ms": 0
    });
    p.write(".xtask/monitor.json", &record.to_string());
    p.xtask(&["stop"]).assert_ok();
    p.write(".xtask/monitor.json", &record.to_string());
    p.xtask(&["start-bg"]).assert_ok();
    p.xtask(&["stop"]).assert_ok();
    assert!(
        is_alive(bystander.pid()),
        "a command killed the process a forged monitor.json named"
    );
}

#[test]
fn a_stop_run_by_a_process_with_the_cookie_spares_its_own_ancestors() {
    let p = one_service("");
    p.xtask(&["start-bg"]).assert_ok();
    // A script of the project's (it carries the cookie) runs `xtask stop`; the script
    // itself must live to say so.
    let script = format!(
        "{} --config {} stop; echo the-script-lived",
        crate::harness::xtask_bin().display(),
        p.path("services.toml").display()
    );
    let out = std::process::Command::new("sh")
        .args(["-c", &script])
        .env("XTASK_PROJECT", &p.root)
        .env("XTASK_SERVICE", "api")
        .output()
        .expect("run the script");
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(out.status.success(), "{out:?}");
    assert!(
        stdout.contains("the-script-lived"),
        "stop killed its own caller:\n{stdout}"
    );
    assert!(stdout.contains("no process of this project is left"), "{stdout}");
}

#[test]
fn a_declared_port_still_held_after_a_stop_fails_it_and_names_the_holder() {
    let [port] = free_ports();
    let fx = fixture();
    // The service declares the port but does not listen on it; a stranger takes it
    // while the service runs.
    let p = Project::new(&format!(
        "[services.web]\ncommand = [\"{fx}\"]\nport = {port}\nhealth = {{ command = \"true\" }}\n"
    ));
    p.xtask(&["start-bg"]).assert_ok();
    let stranger = TcpListener::bind(("127.0.0.1", port)).expect("take the port");
    let me = std::process::id();
    p.xtask(&["stop"])
        .assert_code(1)
        .assert_contains(&format!("port {port} of web is still held by pid {me} ("));
    p.assert_nothing_running();
    drop(stranger);
    p.xtask(&["stop"]).assert_ok();
}

/// `run/api.json` replaced by `text` (a record of another format), naming the live
/// service that the current record names.
fn rewrite_record(p: &Project, text: &str) -> serde_json::Value {
    let path = p.path(".xtask/run/api.json");
    let live: serde_json::Value = serde_json::from_str(&std::fs::read_to_string(&path).expect("record")).expect("json");
    let mut record: serde_json::Value = serde_json::from_str(text).expect("json");
    for key in ["pid", "pgid", "start_time", "log", "cgroup"] {
        record[key] = live[key].clone();
    }
    std::fs::write(&path, record.to_string()).expect("write record");
    live
}

/// A record of the previous format (no `version`, as `tests/it/records/v1.json` keeps
/// it) is read; one with fields a later build added is read; one of a newer format
/// stops the command instead of being taken for garbage and its service for a leftover.
#[test]
fn records_of_other_formats_are_read_or_refused_never_taken_for_garbage() {
    let fx = fixture();
    let p = Project::new(&format!("[services.api]\ncommand = [\"{fx}\"]\n"));
    p.xtask(&["start-bg"]).assert_ok();
    let pid = p
        .read_lines(".xtask/run/api.pid", 1)
        .trim()
        .parse::<i32>()
        .expect("pid");

    rewrite_record(&p, include_str!("records/v1.json"));
    p.xtask(&["status"]).assert_ok().assert_matches(r"api +running");

    let mut later: serde_json::Value = serde_json::from_str(include_str!("records/v1.json")).expect("json");
    later["version"] = 2.into();
    later["field_of_a_later_build"] = "ignored".into();
    rewrite_record(&p, &later.to_string());
    p.xtask(&["status"]).assert_ok().assert_matches(r"api +running");

    let mut newer = later.clone();
    newer["version"] = 99.into();
    let live = rewrite_record(&p, &newer.to_string());
    for args in [&["stop"][..], &["cleanup"], &["start-bg"], &["status"]] {
        p.xtask(args)
            .assert_code(73)
            .assert_contains("was written by a newer xtask (record format 99; this one reads formats up to 2)")
            .assert_contains("nothing was touched");
        assert!(is_alive(pid), "{args:?} killed the service of a newer record");
    }
    std::fs::write(p.path(".xtask/run/api.json"), live.to_string()).expect("restore the record");
    p.xtask(&["stop"]).assert_ok();
    assert!(!is_alive(pid));
}

/// `cleanup` removes the temporary files of interrupted writes, which it names itself
/// (`.<file>.tmp<pid>` of a dead writer), and no file of the user's that merely
/// contains "tmp".
#[test]
fn cleanup_removes_only_its_own_temporary_files() {
    let p = one_service("");
    p.write(".xtask/run/page.tmpl", "a user's template");
    p.write(".xtask/run/notes.tmp", "a user's notes");
    // A PID above the kernel's largest possible (2^22): no live writer has it.
    p.write(".xtask/run/.api.json.tmp9999999", "{ half a record");
    p.xtask(&["cleanup"])
        .assert_ok()
        .assert_contains("and 1 temporary file(s) of interrupted writes");
    assert!(p.path(".xtask/run/page.tmpl").exists(), "cleanup deleted a user's file");
    assert!(p.path(".xtask/run/notes.tmp").exists(), "cleanup deleted a user's file");
    assert!(!p.path(".xtask/run/.api.json.tmp9999999").exists());
}

/// A kill the kernel refuses (EPERM: xtask run by a user who does not own the process)
/// is reported as failed, never as "SIGKILL to …", and the stop fails. The test runs
/// `stop` as `nobody` against a record naming a root-owned process.
#[test]
fn a_kill_the_kernel_refuses_is_reported_as_failed() {
    use std::os::unix::fs::PermissionsExt;
    let p = one_service("");
    let root_owned = Bystander::sleep();
    forge_record(&p, "api", root_owned.pid(), start_time(root_owned.pid()));
    std::fs::set_permissions(&p.root, std::fs::Permissions::from_mode(0o755)).expect("chmod");
    // The state directory is nobody's own: a stop trusts records only there.
    let nobody = Some(nix::unistd::Uid::from_raw(65534));
    std::fs::create_dir_all(p.path(".xtask/logs")).expect("dir");
    for path in [
        ".xtask",
        ".xtask/run",
        ".xtask/logs",
        ".xtask/run/api.json",
        ".xtask/run/api.pid",
    ] {
        nix::unistd::chown(&p.path(path), nobody, Some(nix::unistd::Gid::from_raw(65534))).expect("chown");
    }
    let out = std::process::Command::new("setpriv")
        .args(["--reuid=65534", "--regid=65534", "--clear-groups"])
        .arg(crate::harness::xtask_bin())
        .args(["stop", "--timeout", "100ms"])
        .current_dir(&p.root)
        .env("XTASK_CONFIG", p.path("services.toml"))
        .env("NO_COLOR", "1")
        .output()
        .expect("run stop as nobody");
    let text = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    assert_eq!(out.status.code(), Some(1), "{text}");
    assert!(
        text.contains(&format!(
            "could not kill pid {} of api (Operation not permitted)",
            root_owned.pid()
        )),
        "{text}"
    );
    assert!(
        !text.contains(&format!("SIGKILL to api ({})", root_owned.pid())),
        "{text}"
    );
    assert!(is_alive(root_owned.pid()));
}

/// The lock file names its holder from offset 0 each time: a descriptor shared with
/// the process that handed the lock over had moved the offset, and the file filled
/// with NUL bytes.
#[test]
fn the_lock_file_holds_one_holder_and_no_nul_bytes() {
    let p = one_service("");
    p.xtask(&["start-bg"]).assert_ok();
    p.xtask(&["stop", "api"]).assert_ok();
    p.xtask(&["start-bg"]).assert_ok();
    p.xtask(&["stop"]).assert_ok();
    let lock = std::fs::read(p.path(".xtask/lock")).expect("lock file");
    assert!(!lock.contains(&0), "NUL bytes in the lock file: {lock:?}");
    let text = String::from_utf8_lossy(&lock);
    assert_eq!(text.matches("pid ").count(), 1, "{text}");
}
