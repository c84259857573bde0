//! The terminal UI, driven as a user drives it: in a tmux terminal of the test's own,
//! keys sent with `send-keys`, the screen read with `capture-pane`, against a real stack
//! of fixture services.

use std::time::Duration;

use crate::harness::{Project, fixture, free_ports, wait_for, xtask_bin};
use crate::tmux::Tmux;

const SCREEN: Duration = Duration::from_secs(15);

/// A stack of two services: `db`, and `api` after it; both restart when they die.
fn stack() -> Project {
    let fx = fixture();
    let [db, api] = free_ports();
    Project::new(&format!(
        r#"
[services.db]
command = ["{fx}", "--port", "{db}", "--log", "db ready for connections"]
health = {{ port = {db} }}
restart = "always"

[services.api]
command = ["{fx}", "--port", "{api}", "--log", "api serving requests"]
depends_on = ["db"]
health = {{ port = {api} }}
restart = "always"
"#
    ))
}

/// A shell in a 120×35 terminal, in the project, with xtask at hand as `$X`, and
/// `extra` in its environment.
fn terminal(p: &Project, extra: &[(&str, &str)]) -> Tmux {
    let config = p.path("services.toml");
    let config = config.to_string_lossy();
    let bin = xtask_bin().to_string_lossy().into_owned();
    let mut env = vec![
        ("XTASK_CONFIG", config.as_ref()),
        ("X", bin.as_str()),
        ("PS1", "shell$ "),
    ];
    env.extend_from_slice(extra);
    let shell = Tmux::start(&p.root, 120, 35, &env, &["bash", "--norc", "--noprofile"]);
    // OSC 52 from a program reaches tmux's buffers only with this.
    shell.set("set-clipboard", "on");
    shell.wait_for_screen("the shell", SCREEN, |s| s.contains("shell$"));
    shell
}

/// The row of `service` in the table on `screen`.
fn row<'s>(screen: &'s str, service: &str) -> Option<&'s str> {
    screen.lines().find(|l| l.split_whitespace().next() == Some(service))
}

fn pid_in_status(p: &Project, service: &str) -> Option<i64> {
    let status = p.xtask(&["status", "--json"]);
    let json: serde_json::Value = serde_json::from_str(&status.stdout).ok()?;
    json["services"].as_array()?.iter().find(|s| s["service"] == service)?["pid"].as_i64()
}

#[test]
fn the_ui_shows_the_stack_restarts_finds_and_quits_leaving_it_running() {
    let p = stack();
    p.xtask(&["start-bg"]).assert_ok();
    let term = terminal(&p, &[]);
    term.send(&["\"$X\" ui", "Enter"]);

    // The table lists every service with its state.
    let screen = term.wait_for_screen("both services healthy", SCREEN, |s| {
        ["db", "api"]
            .iter()
            .all(|name| row(s, name).is_some_and(|r| r.contains("running") && r.contains("healthy")))
    });
    assert!(screen.contains("SERVICE") && screen.contains("HEALTH"), "{screen}");

    // A killed service shows restarting, then healthy again under a new PID.
    let old = p.pid_of("api");
    nix::sys::signal::kill(nix::unistd::Pid::from_raw(old), nix::sys::signal::Signal::SIGKILL).expect("kill api");
    let new = p.wait_for_new_pid("api", old);
    term.wait_for_screen("api's restart among the events", SCREEN, |s| {
        s.lines().any(|l| l.contains("api:") && l.contains("restarting"))
    });
    term.wait_for_screen("api healthy again with its new PID", SCREEN, |s| {
        row(s, "api").is_some_and(|r| r.contains(&new.to_string()) && r.contains("healthy"))
    });

    // `r` on the selected service (the second row) restarts it: a new PID.
    let before = pid_in_status(&p, "api").expect("api's pid");
    term.send(&["j", "r"]);
    wait_for("a new pid for api after `r`", SCREEN, || {
        pid_in_status(&p, "api").is_some_and(|pid| pid != before)
    });
    term.wait_for_screen("the restart's end among the events", SCREEN, |s| {
        s.contains("restart api: done")
    });

    // `/` finds a line the service printed, and marks it.
    term.send(&["/", "serving req", "Enter"]);
    term.wait_for_screen("the search's match", SCREEN, |s| s.contains("/serving req: line"));
    let styled = term.screen_with_styles();
    let escapes = regex::Regex::new("\u{1b}\\[[0-9;]*m").expect("regex");
    assert!(
        styled
            .lines()
            .any(|l| l.starts_with("\u{1b}[7m") && escapes.replace_all(l, "").contains("api serving requests")),
        "no marked match in\n{styled}"
    );

    // `c` copies the marked line through the terminal (OSC 52).
    term.send(&["c"]);
    wait_for("the marked line on the clipboard", SCREEN, || {
        term.clipboard() == "api serving requests"
    });

    // `q` leaves the stack running and gives the terminal back.
    term.send(&["q"]);
    term.wait_for_screen("the shell's prompt again", SCREEN, |s| {
        s.lines().last_non_empty().is_some_and(|l| l.starts_with("shell$"))
    });
    assert_eq!(
        term.alternate_screen(),
        Some(false),
        "the terminal is still on the alternate screen"
    );
    p.xtask(&["status"]).assert_ok().assert_contains("healthy");
    p.xtask(&["stop"]).assert_ok();
    p.assert_nothing_running();
}

/// `start --tui` starts the stack and shows it; Ctrl+C (as `q`) stops what it started.
#[test]
fn start_tui_stops_what_it_started_when_it_quits() {
    let p = stack();
    let term = terminal(&p, &[]);
    // The split quotes keep the typed line from matching what the echo prints.
    term.send(&["\"$X\" start --tui; echo \"exit\"\"=$?\"", "Enter"]);
    term.wait_for_screen("the UI over a healthy stack", SCREEN, |s| {
        s.contains("q stops it") && row(s, "api").is_some_and(|r| r.contains("healthy"))
    });
    term.send(&["C-c"]);
    let screen = term.wait_for_screen("the stop's end", SCREEN, |s| s.contains("exit="));
    assert!(screen.contains("exit=0"), "{screen}");
    assert!(screen.contains("no process of this project is left"), "{screen}");
    assert_eq!(term.alternate_screen(), Some(false));
    p.assert_nothing_running();
}

/// Without colour (NO_COLOR) and at 80×24 after a resize, the table still shows every
/// service; SIGTERM ends the UI as `q` does: the terminal is restored and the stack
/// runs on.
#[test]
fn no_color_a_resize_and_sigterm() {
    let p = stack();
    p.xtask(&["start-bg"]).assert_ok();
    let term = terminal(&p, &[("NO_COLOR", "1")]);
    term.send(&["\"$X\" ui; echo \"ui\"\" ended $?\"", "Enter"]);
    let screen = term.wait_for_screen("the UI", SCREEN, |s| {
        s.contains("q leaves it running") && s.contains("BUILD")
    });
    assert!(
        row(&screen, "db").is_some() && row(&screen, "api").is_some(),
        "{screen}"
    );
    let colour = regex::Regex::new(r"\x1b\[[0-9;]*\b(3[0-8]|4[0-8]|9[0-7]|10[0-7])\b[0-9;]*m").expect("regex");
    let styled = term.screen_with_styles();
    assert!(!colour.is_match(&styled), "colour under NO_COLOR:\n{styled}");

    term.resize(80, 24);
    // Narrower, the build column is left out; every service still has its row.
    term.wait_for_screen("the UI redrawn at 80 columns", SCREEN, |s| {
        s.contains("SERVICE")
            && !s.contains("BUILD")
            && s.lines().all(|l| l.chars().count() <= 80)
            && ["db", "api"]
                .iter()
                .all(|name| row(s, name).is_some_and(|r| r.contains("running")))
    });

    let ui = crate::harness::working_in(&p.root)
        .into_iter()
        .find(|pid| {
            std::fs::read(format!("/proc/{pid}/cmdline"))
                .is_ok_and(|c| String::from_utf8_lossy(&c).split('\0').any(|a| a == "ui"))
        })
        .expect("the ui process");
    nix::sys::signal::kill(nix::unistd::Pid::from_raw(ui), nix::sys::signal::Signal::SIGTERM).expect("signal the ui");
    term.wait_for_screen("the UI's end", SCREEN, |s| s.contains("ui ended"));
    assert_eq!(term.alternate_screen(), Some(false));
    p.xtask(&["status"]).assert_ok();
    p.xtask(&["stop"]).assert_ok();
    p.assert_nothing_running();
}

/// The last line on the screen that is not blank.
trait LastNonEmpty<'a> {
    fn last_non_empty(self) -> Option<&'a str>;
}

impl<'a, I: DoubleEndedIterator<Item = &'a str>> LastNonEmpty<'a> for I {
    fn last_non_empty(mut self) -> Option<&'a str> {
        self.rfind(|l| !l.trim().is_empty())
    }
}

/// A running service whose config changed since it started is marked in the table, as
/// `status` marks it; `r` restarts it on the new config and the mark goes.
#[test]
fn the_ui_marks_a_service_whose_config_changed_until_r_restarts_it() {
    let p = stack();
    p.xtask(&["start-bg"]).assert_ok();
    let config = std::fs::read_to_string(p.path("services.toml")).expect("services.toml");
    p.write(
        "services.toml",
        &config.replace(
            "depends_on = [\"db\"]",
            "depends_on = [\"db\"]\nenv = { GREETING = \"hello\" }",
        ),
    );
    let term = terminal(&p, &[]);
    term.send(&["\"$X\" ui", "Enter"]);
    let screen = term.wait_for_screen("api marked as changed", SCREEN, |s| {
        row(s, "api").is_some_and(|r| r.contains("config changed"))
    });
    assert!(
        row(&screen, "db").is_some_and(|r| !r.contains("config changed")),
        "db is marked although its config did not change:\n{screen}"
    );
    term.send(&["j", "r"]);
    term.wait_for_screen("api restarted on its new config", SCREEN, |s| {
        s.contains("restart api: done")
            && row(s, "api").is_some_and(|r| r.contains("healthy") && !r.contains("config changed"))
    });
    term.send(&["q"]);
    term.wait_for_screen("the shell's prompt again", SCREEN, |s| {
        s.lines().last_non_empty().is_some_and(|l| l.starts_with("shell$"))
    });
    p.xtask(&["stop"]).assert_ok();
    p.assert_nothing_running();
}
