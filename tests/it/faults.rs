//! The fault matrix: crashes of the manager at each point of a start and a stop,
//! hostile process trees, PID reuse, concurrent commands, damaged state, processes
//! that lost the cookie. Every row ends with nothing of the project alive, no
//! unrelated process harmed, and a consistent state directory.

use std::process::{Child, Stdio};
use std::time::Duration;

use nix::sys::signal::{Signal, kill};
use nix::unistd::Pid;

use crate::harness::{Bystander, Project, fixture, free_ports, is_alive, start_time, wait_for};

const LONG: Duration = Duration::from_secs(20);

/// a (port) <- b: two dependency levels.
fn chain() -> Project {
    let [port] = free_ports();
    let fx = fixture();
    Project::new(&format!(
        r#"
[services.a]
command = ["{fx}", "--port", "{port}", "--spawn-daemon"]
port = {port}

[services.b]
command = ["{fx}"]
depends_on = ["a"]
"#
    ))
}

/// Runs `args` with `XTASK_FAULT=point`, waits until it stops there, and SIGKILLs it.
fn crash_at(p: &Project, args: &[&str], point: &str) {
    let child = p
        .command(args)
        .env("XTASK_FAULT", point)
        .stdout(Stdio::null())
        .spawn()
        .expect("spawn xtask");
    let marker = p.path(&format!(".xtask/fault-{point}"));
    wait_for(&format!("xtask to reach {point}"), LONG, || marker.exists());
    sigkill(child);
    std::fs::remove_file(marker).expect("remove the fault marker");
}

fn sigkill(mut child: Child) {
    kill(Pid::from_raw(child.id() as i32), Signal::SIGKILL).expect("SIGKILL xtask");
    child.wait().expect("reap xtask");
}

/// The state directory agrees with the processes: every record names a live process
/// with its start time, every PID file matches its record, no temporary file is left
/// by a dead writer, and every process with the cookie belongs to a service with a
/// record.
#[track_caller]
fn assert_consistent(p: &Project) {
    let run = p.path(".xtask/run");
    let mut recorded = Vec::new();
    for entry in std::fs::read_dir(&run).into_iter().flatten().flatten() {
        let name = entry.file_name().to_string_lossy().into_owned();
        // A temporary file is fine while its writer (named in it) is still writing.
        if let Some((_, writer)) = name.rsplit_once(".tmp") {
            let writer: i32 = writer.parse().unwrap_or(0);
            assert!(is_alive(writer), "a temporary file was left by a dead writer: {name}");
            continue;
        }
        if let Some(service) = name.strip_suffix(".json") {
            let text = std::fs::read_to_string(entry.path()).expect("read record");
            let record: serde_json::Value = serde_json::from_str(&text).expect("a record is valid JSON");
            let pid = record["pid"].as_i64().expect("pid") as i32;
            assert!(is_alive(pid), "the record of {service} names a dead pid {pid}");
            assert_eq!(
                record["start_time"].as_u64(),
                Some(start_time(pid)),
                "the record of {service} is stale"
            );
            let pid_file = std::fs::read_to_string(run.join(format!("{service}.pid"))).expect("a pid file");
            assert_eq!(
                pid_file.trim(),
                pid.to_string(),
                "the pid file of {service} disagrees with its record"
            );
            recorded.push(service.to_string());
        }
    }
    for (pid, service, command) in p.service_processes() {
        assert!(
            recorded.contains(&service),
            "pid {pid} ({command}) of {service} has no record"
        );
    }
}

/// One instance per service: each service's main processes (not its daemons) counted.
fn instances(p: &Project, service: &str) -> usize {
    p.service_processes()
        .iter()
        .filter(|(_, s, cmd)| s == service && !cmd.contains("--log"))
        .count()
}

/// A crash row: crash the start at `point`, then recover with `recovery`.
fn start_crash_row(point: &str, recovery: &str) {
    let p = chain();
    let bystander = Bystander::sleep();
    crash_at(&p, &["start-bg", "--no-monitor"], point);
    assert!(
        !p.service_processes().is_empty(),
        "the crash at {point} left nothing to recover; log of a:\n{}\nrecords: {:?}",
        p.log("a"),
        std::fs::read_dir(p.path(".xtask/run"))
            .map(|d| d.flatten().map(|e| e.file_name()).collect::<Vec<_>>())
            .unwrap_or_default()
    );
    match recovery {
        "stop" => {
            p.xtask(&["stop"]).assert_ok();
        }
        "cleanup" => {
            p.xtask(&["cleanup"]).assert_ok();
            assert_consistent(&p);
            p.xtask(&["stop"]).assert_ok();
        }
        "start-bg" => {
            p.xtask(&["start-bg"]).assert_ok();
            assert_consistent(&p);
            assert_eq!(
                (instances(&p, "a"), instances(&p, "b")),
                (1, 1),
                "{:?}",
                p.service_processes()
            );
            p.xtask(&["stop"]).assert_ok();
        }
        other => unreachable!("no recovery {other}"),
    }
    p.assert_nothing_running();
    assert_consistent(&p);
    assert!(is_alive(bystander.pid()), "an unrelated process was harmed");
}

macro_rules! start_crash_rows {
    ($($name:ident: $point:expr, $recovery:expr;)*) => {
        $(
            #[test]
            fn $name() {
                start_crash_row($point, $recovery);
            }
        )*
    };
}

start_crash_rows! {
    killed_after_a_spawn_before_its_record_then_stop: "start-after-spawn", "stop";
    killed_after_a_spawn_before_its_record_then_cleanup: "start-after-spawn", "cleanup";
    killed_after_a_spawn_before_its_record_then_start_bg: "start-after-spawn", "start-bg";
    killed_after_the_record_before_healthy_then_stop: "start-after-record", "stop";
    killed_after_the_record_before_healthy_then_cleanup: "start-after-record", "cleanup";
    killed_after_the_record_before_healthy_then_start_bg: "start-after-record", "start-bg";
    killed_between_two_dependency_levels_then_stop: "start-after-healthy", "stop";
    killed_between_two_dependency_levels_then_cleanup: "start-after-healthy", "cleanup";
    killed_between_two_dependency_levels_then_start_bg: "start-after-healthy", "start-bg";
}

fn stop_crash_row(point: &str) {
    let fx = fixture();
    let p = Project::new(&format!(
        r#"
[services.stubborn]
command = ["{fx}", "--ignore-sigterm", "--log", "ready", "--spawn-daemon"]
stop_timeout = "200ms"
# Healthy once SIGTERM is ignored: a stop that came sooner would end it at once.
health = {{ log = "ready" }}

[services.plain]
command = ["{fx}"]
"#
    ));
    let bystander = Bystander::sleep();
    p.xtask(&["start-bg"]).assert_ok();
    crash_at(&p, &["stop"], point);
    p.xtask(&["status"]).assert_contains("stopping");
    p.xtask(&["stop"]).assert_ok();
    p.assert_nothing_running();
    assert_consistent(&p);
    assert!(is_alive(bystander.pid()), "an unrelated process was harmed");
}

#[test]
fn killed_between_stop_phases_1_and_2_then_a_second_stop_finishes() {
    stop_crash_row("stop-after-phase-1");
}

#[test]
fn killed_between_stop_phases_2_and_3_then_a_second_stop_finishes() {
    stop_crash_row("stop-after-phase-2");
}

/// Starts `command` as the only service and stops it: nothing may survive.
fn hostile_tree_row(flags: &str, expected_processes: usize) {
    let fx = fixture();
    let p = Project::new(&format!(
        "[services.tree]\ncommand = [\"{fx}\", {flags}]\nstop_timeout = \"500ms\"\n"
    ));
    let bystander = Bystander::sleep();
    p.xtask(&["start-bg"]).assert_ok();
    wait_for(&format!("{expected_processes} processes"), LONG, || {
        p.service_processes().len() >= expected_processes
    });
    p.xtask(&["stop"]).assert_ok();
    p.assert_nothing_running();
    assert!(is_alive(bystander.pid()), "an unrelated process was harmed");
}

#[test]
fn a_grandchild_that_changes_its_process_group_is_stopped() {
    hostile_tree_row("\"--spawn-setpgid\"", 2);
}

#[test]
fn a_service_that_ignores_sigterm_with_a_double_forked_daemon_is_stopped() {
    hostile_tree_row("\"--ignore-sigterm\", \"--spawn-daemon\", \"--spawn-child\"", 3);
}

#[test]
fn a_service_with_a_tree_of_100_descendants_is_stopped() {
    hostile_tree_row("\"--children\", \"10\", \"--grandchildren\", \"9\"", 101);
}

#[test]
fn a_pid_file_naming_an_unrelated_process_survives_every_command() {
    let fx = fixture();
    let p = Project::new(&format!("[services.api]\ncommand = [\"{fx}\"]\n"));
    let bystander = Bystander::sleep();
    let plant = || p.write(".xtask/run/api.pid", &format!("{}\n", bystander.pid()));
    for args in [
        &["status"][..],
        &["check"],
        &["stop"],
        &["stop", "--force", "api"],
        &["cleanup"],
        &["restart"],
    ] {
        plant();
        p.xtask(args);
        assert!(
            is_alive(bystander.pid()),
            "`xtask {}` signalled an unrelated process",
            args.join(" ")
        );
    }
    p.xtask(&["stop"]).assert_ok();
    p.assert_nothing_running();
}

#[test]
fn two_start_bg_at_once_start_each_service_once() {
    let p = chain();
    let first = p.command(&["start-bg"]).stdout(Stdio::piped()).spawn().expect("first");
    let second = p.command(&["start-bg"]).stdout(Stdio::piped()).spawn().expect("second");
    let codes: Vec<Option<i32>> = [first, second]
        .into_iter()
        .map(|c| c.wait_with_output().expect("wait").status.code())
        .collect();
    assert!(codes.contains(&Some(0)), "neither start-bg succeeded: {codes:?}");
    assert!(codes.iter().all(|c| matches!(c, Some(0) | Some(75))), "{codes:?}");
    assert_eq!(
        (instances(&p, "a"), instances(&p, "b")),
        (1, 1),
        "{:?}",
        p.service_processes()
    );
    assert_consistent(&p);
}

#[test]
fn start_bg_and_stop_at_once_end_consistent() {
    let p = chain();
    let start = p
        .command(&["start-bg"])
        .stdout(Stdio::piped())
        .spawn()
        .expect("start-bg");
    let stop = p.command(&["stop"]).stdout(Stdio::piped()).spawn().expect("stop");
    // Stop wins over start: a start it finds holding the lock is asked to abandon and
    // ends interrupted (130); otherwise one waits for the other.
    for (child, codes) in [(start, [Some(0), Some(130)]), (stop, [Some(0), Some(0)])] {
        let out = child.wait_with_output().expect("wait");
        let code = out.status.code();
        let text = format!(
            "{}{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        );
        assert!(codes.contains(&code), "unexpected exit {code:?}:\n{text}");
    }
    assert_consistent(&p);
    assert!(
        instances(&p, "a") <= 1 && instances(&p, "b") <= 1,
        "{:?}",
        p.service_processes()
    );
}

#[test]
fn status_during_a_stop_answers_and_shows_it() {
    let fx = fixture();
    let p = Project::new(&format!(
        "[services.slow]\ncommand = [\"{fx}\", \"--ignore-sigterm\", \"--log\", \"ready\"]\nstop_timeout = \"3s\"\nhealth = {{ log = \"ready\" }}\n"
    ));
    p.xtask(&["start-bg"]).assert_ok();
    let pid: i64 = p.read_lines(".xtask/run/slow.pid", 1).trim().parse().expect("pid");
    let stop = p.command(&["stop"]).stdout(Stdio::piped()).spawn().expect("stop");
    let mut seen = String::new();
    wait_for("status to show the stop", LONG, || {
        seen = p.xtask(&["status"]).stdout;
        seen.contains("stopping")
    });
    assert!(seen.contains(" slow "), "{seen}");
    // Until its process ends, a service being stopped runs: its PID shows, and
    // `status` counts it as running (exit 0), not as gone with no PID (exit 3).
    let json = p.xtask(&["status", "--json"]);
    let value: serde_json::Value = serde_json::from_str(&json.stdout).expect("json");
    // The service ignores SIGTERM: the stop waits out its 3 s stop_timeout.
    assert_eq!(value["services"][0]["state"], "stopping", "{json}");
    assert_eq!(value["services"][0]["pid"].as_i64(), Some(pid), "{json}");
    assert_eq!(json.code, Some(0), "{json}");
    assert_eq!(stop.wait_with_output().expect("stop").status.code(), Some(0));
    p.assert_nothing_running();
}

#[test]
fn a_deleted_state_directory_does_not_hide_running_services() {
    let p = chain();
    p.xtask(&["start-bg"]).assert_ok();
    // The monitor may be writing a record (the process tree it keeps) meanwhile.
    wait_for("the state directory to be deleted", LONG, || {
        std::fs::remove_dir_all(p.path(".xtask")).is_ok()
    });
    p.xtask(&["stop"]).assert_ok();
    p.assert_nothing_running();
}

#[test]
fn a_log_directory_that_cannot_be_written_fails_the_start_cleanly() {
    let fx = fixture();
    let p = Project::new(&format!("[services.api]\ncommand = [\"{fx}\"]\n"));
    p.write(".xtask/logs", "a file where the log directory should be");
    p.xtask(&["start-bg"])
        .assert_code(73)
        .assert_contains("cannot write the state directory at");
    p.assert_nothing_running();
    assert_consistent(&p);
}

/// Kills a process by PID when dropped: for processes that lost the cookie, which the
/// project guard cannot find.
struct KillOnDrop(i32);

impl Drop for KillOnDrop {
    fn drop(&mut self) {
        if is_alive(self.0) {
            let _ = kill(Pid::from_raw(self.0), Signal::SIGKILL);
        }
    }
}

#[test]
fn orphan_patterns_find_processes_that_lost_the_cookie_and_nothing_outside_the_project() {
    let fx = fixture();
    let mark = format!("lost-marker-{}", std::process::id());
    let p = Project::new(&format!(
        "[project]\norphan_patterns = [\"lost-marker-\\\\d+\"]\n\n[services.tool]\ncommand = [\"{fx}\", \"--spawn-lost\", \"{mark}\"]\n"
    ))
    // The last-resort layer: no cgroup holds the process that lost its cookie, and no
    // monitor sees it re-parented and records it in the service's tree.
    .with_env("XTASK_CGROUP", "0");
    // The same command line, but working outside the project: never a match.
    let mut outside = std::process::Command::new(fx)
        .args(["--log", &mark])
        .current_dir(std::env::temp_dir())
        .env_remove("XTASK_PROJECT")
        .stdout(Stdio::null())
        .spawn()
        .expect("spawn the outside process");
    let _outside_guard = KillOnDrop(outside.id() as i32);

    p.xtask(&["start-bg", "--no-monitor"]).assert_ok();
    let mut lost = None;
    wait_for("the lost process", LONG, || {
        lost = p
            .log("tool")
            .lines()
            .find_map(|l| l.strip_prefix("lost pid ")?.trim().parse::<i32>().ok());
        lost.is_some()
    });
    let lost = lost.expect("lost pid");
    let _lost_guard = KillOnDrop(lost);
    assert!(
        !p.cookie_holders().iter().any(|(pid, _, _)| *pid == lost),
        "the lost process still has the cookie"
    );

    p.xtask(&["cleanup", "--dry-run"])
        .assert_ok()
        .assert_contains(&format!("would stop pid {lost} (matches orphan_patterns)"));
    assert!(is_alive(lost), "a dry run stopped something");

    p.xtask(&["stop"])
        .assert_ok()
        .assert_contains(&format!("matches orphan_patterns: pid {lost}:"))
        .assert_contains("stopped 1 matching orphan_patterns");
    assert!(!is_alive(lost), "the process that lost the cookie survived the stop");
    assert!(
        is_alive(outside.id() as i32),
        "a process outside the project was stopped"
    );
    p.assert_nothing_running();
    let _ = outside.kill();
    let _ = outside.wait();
}

/// The pid the fixture's lost process (cookie cleared, a session of its own, its
/// parent gone) logged.
fn lost_pid(p: &Project, service: &str) -> i32 {
    let mut lost = None;
    wait_for("the lost process", LONG, || {
        lost = p
            .log(service)
            .lines()
            .find_map(|l| l.strip_prefix("lost pid ")?.trim().parse::<i32>().ok());
        lost.is_some()
    });
    lost.expect("lost pid")
}

/// The PIDs of the process tree a service's record lists (kept without cgroups).
fn recorded_tree(p: &Project, service: &str) -> Vec<i64> {
    let text = std::fs::read_to_string(p.path(&format!(".xtask/run/{service}.json"))).unwrap_or_default();
    let record: serde_json::Value = serde_json::from_str(&text).unwrap_or_default();
    record["tree"]
        .as_array()
        .into_iter()
        .flatten()
        .filter_map(|entry| entry[0].as_i64())
        .collect()
}

/// A grandchild that clears its environment, starts a session of its own and whose
/// parent exits: neither cookie nor group leads to it. Its cgroup holds it; without
/// one, the monitor sees it re-parented and records it in the service's tree, so a
/// stop finds it even after the monitor was killed.
#[test]
fn a_grandchild_that_clears_its_cookie_and_leaves_the_group_is_stopped_in_both_modes() {
    let fx = fixture();
    for (mode, cgroup) in [("cgroup", "1"), ("tree", "0")] {
        let mark = format!("cleared-{mode}-{}", std::process::id());
        let p = Project::new(&format!(
            "[services.tool]\ncommand = [\"{fx}\", \"--spawn-lost\", \"{mark}\"]\n"
        ))
        .with_env("XTASK_CGROUP", cgroup);
        p.xtask(&["start-bg"]).assert_ok();
        let lost = lost_pid(&p, "tool");
        let _lost_guard = KillOnDrop(lost);
        if mode == "tree" {
            wait_for("the lost process in the recorded tree", LONG, || {
                recorded_tree(&p, "tool").contains(&i64::from(lost))
            });
        }
        let monitor = p.monitor_pid().expect("the monitor");
        kill(Pid::from_raw(monitor), Signal::SIGKILL).expect("kill the monitor");
        wait_for("the monitor to die", LONG, || !is_alive(monitor));

        p.xtask(&["stop"])
            .assert_ok()
            .assert_contains("no process of this project is left");
        assert!(
            !is_alive(lost),
            "{mode}: the grandchild that cleared its cookie survived"
        );
        p.assert_nothing_running();
    }
}

/// A start that never becomes healthy (30 s of failing probes), whose `start-bg`
/// client was killed: the monitor holds the lock and goes on starting.
fn hung_start() -> Project {
    let fx = fixture();
    let p = Project::new(&format!(
        "[services.api]\ncommand = [\"{fx}\"]\nhealth = {{ command = \"false\", interval = \"100ms\", retries = 300 }}\n"
    ));
    let mut client = p.spawn_quietly(&["start-bg"]);
    wait_for("the service to be spawned", LONG, || {
        p.path(".xtask/run/api.pid").exists()
    });
    kill(Pid::from_raw(client.id() as i32), Signal::SIGKILL).expect("kill the client");
    let _ = client.wait();
    assert!(
        p.monitor_pid().is_some_and(is_alive),
        "the monitor went with its client"
    );
    p
}

#[test]
fn stop_force_during_a_hung_start_takes_over_and_leaves_nothing() {
    let p = hung_start();
    p.xtask(&["stop", "--force"])
        .assert_ok()
        .assert_contains("is starting services: asking it to abandon and roll back")
        .assert_contains("no process of this project is left");
    p.assert_nothing_running();
}

#[test]
fn stop_and_cleanup_during_a_hung_start_do_not_wait_it_out() {
    let p = hung_start();
    p.xtask(&["stop"])
        .assert_ok()
        .assert_contains("no process of this project is left");
    p.assert_nothing_running();
    let p = hung_start();
    p.xtask(&["cleanup"]).assert_ok();
    p.assert_nothing_running();
}

/// Stop wins over a start in its build as in every phase: `stop --force`, `stop` and
/// `cleanup` during a `start-bg` whose build runs (and would run until killed) make it
/// abandon (130), its build ended with it, within 2 s.
#[test]
fn stop_stop_force_and_cleanup_preempt_a_start_that_builds() {
    let fx = fixture();
    let p = Project::new(&format!(
        "[services.web]\ncommand = [\"{fx}\"]\nbuild = \"{fx} --log building\"\n"
    ));
    for command in [&["stop", "--force"][..], &["stop"], &["cleanup"]] {
        let mut start = p.spawn_quietly(&["start-bg"]);
        // The build carries the service's cookie; the monitor that runs it, its own.
        wait_for("the build to run", LONG, || {
            p.cookie_holders().iter().any(|(_, service, _)| service == "web")
        });
        let run = p.xtask_within(command, LONG);
        run.assert_ok()
            .assert_contains("is starting services: asking it to abandon and roll back");
        assert!(run.took < Duration::from_secs(2), "took {:?}\n{run}", run.took);
        let mut code = None;
        wait_for("the preempted start to end", LONG, || {
            code = start.try_wait().expect("wait for the start");
            code.is_some()
        });
        assert_eq!(
            code.and_then(|c| c.code()),
            Some(130),
            "the start was not preempted\n{run}"
        );
        p.assert_nothing_running();
    }
}

/// A closed pipe (`| head -1`) and a full disk under stdout lose the output, never panic,
/// and the command keeps its own exit code.
#[test]
fn a_closed_pipe_or_a_full_disk_under_stdout_is_no_panic() {
    let p = Project::new(&format!("[services.api]\ncommand = [\"{}\"]\n", fixture()));
    let closed = || {
        let (reader, writer) = std::io::pipe().expect("pipe");
        drop(reader);
        writer
    };
    for args in [&["completions", "bash"][..], &["status"], &["check"]] {
        let out = p.command(args).stdout(closed()).output().expect("run xtask");
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert!(!stderr.contains("panicked"), "{args:?} with a closed stdout: {stderr}");
        assert!(
            out.status.code().is_some(),
            "{args:?} killed by a signal: {:?}",
            out.status
        );
        let full = std::fs::OpenOptions::new()
            .write(true)
            .open("/dev/full")
            .expect("/dev/full");
        let out = p.command(args).stdout(full).output().expect("run xtask");
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert!(!stderr.contains("panicked"), "{args:?} into /dev/full: {stderr}");
        assert!(
            stderr.contains("cannot write stdout") && stderr.contains("the command goes on"),
            "{args:?} into /dev/full said nothing: {stderr}"
        );
    }
    // The exit code is the command's own: `check` of a good config succeeds.
    let out = p.command(&["check"]).stdout(closed()).output().expect("run check");
    assert_eq!(out.status.code(), Some(0), "{}", String::from_utf8_lossy(&out.stderr));
}

/// A FIFO where a log belongs blocked the open (no reader) with the lock held.
#[test]
fn a_fifo_in_place_of_a_log_is_refused_not_waited_on() {
    let p = Project::new(&format!("[services.api]\ncommand = [\"{}\"]\n", fixture()));
    std::fs::create_dir_all(p.path(".xtask/logs")).expect("logs dir");
    nix::unistd::mkfifo(&p.path(".xtask/logs/api.log"), nix::sys::stat::Mode::S_IRWXU).expect("mkfifo");
    p.xtask_within(&["start-bg"], LONG)
        .assert_code(73)
        .assert_contains("not a regular file");
    let status = p.xtask_within(&["status"], LONG);
    assert!(status.code.is_some() && !status.stderr.contains("panicked"), "{status}");
    p.assert_nothing_running();
}

/// A service may be called `monitor`: its log is its own, the monitor's events go apart.
#[test]
fn a_service_named_monitor_keeps_its_log_apart_from_the_monitors() {
    let p = Project::new(&format!(
        "[services.monitor]\ncommand = [\"{}\", \"--log\", \"service line\"]\n",
        fixture()
    ));
    p.xtask(&["start-bg"]).assert_ok();
    wait_for("the service's line", LONG, || p.log("monitor").contains("service line"));
    p.xtask(&["stop"]).assert_ok();
    wait_for("the monitor's last event", LONG, || !p.monitor_log().is_empty());
    assert!(
        !p.log("monitor").contains("monitor:"),
        "the monitor wrote into the service's log:\n{}",
        p.log("monitor")
    );
}

/// A `stop` that preempts a `restart` during the restart's own stop: the restart ends
/// as an interrupted command does (130), starts nothing again, and the stop leaves
/// nothing running.
#[test]
fn a_restart_preempted_during_its_stop_exits_130_and_starts_nothing() {
    let p = Project::new(&format!(
        "[services.web]\ncommand = [\"{}\", \"--ignore-sigterm\"]\nstop_timeout = \"3s\"\n",
        fixture()
    ));
    p.xtask(&["start-bg"]).assert_ok();
    let mut restart = p.spawn_quietly(&["restart"]);
    wait_for("the restart to hold the lock", LONG, || {
        std::fs::read_to_string(p.path(".xtask/lock")).is_ok_and(|holder| holder.contains("restart"))
    });
    p.xtask_within(&["stop"], LONG)
        .assert_ok()
        .assert_contains("no process of this project is left");
    let mut code = None;
    wait_for("the preempted restart to end", LONG, || {
        code = restart.try_wait().expect("wait for the restart");
        code.is_some()
    });
    assert_eq!(code.and_then(|c| c.code()), Some(130), "the restart was not preempted");
    p.assert_nothing_running();
}
