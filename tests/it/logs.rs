//! Logs of the stack: each service's output goes through its relay, which times each
//! write and rotates the log; `logs` reads them all, across rotated files, in time order.

use std::time::Duration;

use crate::harness::{Project, wait_for};

const LONG: Duration = Duration::from_secs(60);

/// The numbers of `line N …` lines in the kept files, oldest first, each checked whole.
fn numbered_lines(p: &Project, keep: u32, limit: u64) -> Vec<u64> {
    let mut files: Vec<std::path::PathBuf> = (1..=keep)
        .rev()
        .map(|n| p.path(&format!(".xtask/logs/flood.log.{n}")))
        .collect();
    files.push(p.path(".xtask/logs/flood.log"));
    let mut numbers = Vec::new();
    for file in &files {
        let text = std::fs::read_to_string(file).unwrap_or_else(|e| panic!("{}: {e}", file.display()));
        let size = text.len() as u64;
        assert!(size <= limit, "{} has {size} bytes, over {limit}", file.display());
        for line in text.lines().filter(|l| !l.starts_with("── start ")) {
            let number = line
                .strip_prefix("line ")
                .and_then(|rest| rest.strip_suffix(" of the flood, padded to be long enough"))
                .and_then(|n| n.parse::<u64>().ok())
                .unwrap_or_else(|| panic!("a split or foreign line in {}: {line:?}", file.display()));
            numbers.push(number);
        }
    }
    numbers
}

#[test]
fn a_flood_of_50_mb_rotates_at_the_limit_without_losing_or_splitting_a_line() {
    let lines = 850_000;
    let p = Project::new(&format!(
        r#"
[project]
log_max_size = "1MB"
log_keep = 3

[services.flood]
command = "seq -f 'line %09g of the flood, padded to be long enough' 1 {lines}; exec sleep 1000"
"#
    ));
    p.xtask(&["start-bg"]).assert_ok();
    let last = format!("line {lines:09} of the flood");
    wait_for("the flood's last line", LONG, || {
        std::fs::read_to_string(p.path(".xtask/logs/flood.log")).is_ok_and(|t| t.contains(&last))
    });
    let logs: Vec<String> = std::fs::read_dir(p.path(".xtask/logs"))
        .expect("logs dir")
        .filter_map(|e| e.ok()?.file_name().into_string().ok())
        .filter(|n| n.starts_with("flood.log"))
        .collect();
    assert_eq!(logs.len(), 4, "not log_keep + 1 files: {logs:?}");
    let numbers = numbered_lines(&p, 3, 1024 * 1024);
    assert_eq!(numbers.last(), Some(&lines), "the last line is missing");
    let first = numbers.first().copied().unwrap_or(0);
    let expected: Vec<u64> = (first..=lines).collect();
    assert!(
        numbers == expected,
        "lines lost or out of order between {first} and {lines}"
    );
    assert!(
        numbers.len() > 50_000,
        "only {} lines kept in 4 files of 1 MiB",
        numbers.len()
    );
}

#[test]
fn logs_reads_across_rotated_files() {
    let p = Project::new(
        r#"
[project]
log_max_size = "64KB"
log_keep = 5

[services.count]
command = "seq 1 30000; exec sleep 1000"
"#,
    );
    p.xtask(&["start-bg"]).assert_ok();
    wait_for("the last number", LONG, || {
        std::fs::read_to_string(p.path(".xtask/logs/count.log")).is_ok_and(|t| t.ends_with("\n30000\n"))
    });
    let run = p.xtask(&["logs", "count", "-n", "20000"]);
    run.assert_ok();
    let numbers: Vec<u64> = run.stdout.lines().filter_map(|l| l.parse().ok()).collect();
    let expected: Vec<u64> = (10_001..=30_000).collect();
    assert!(
        numbers == expected,
        "not the last 20000 numbers in order: {} lines",
        numbers.len()
    );
}

/// Two services that take turns: each line is written after the other service's
/// previous one (a file marks each), 100 ms later.
fn turn_takers() -> Project {
    let p = Project::new(
        r#"
[services.a]
command = "echo a-first; touch a1; until test -f b1; do sleep 0.01; done; sleep 0.1; echo a-third; touch a3; exec sleep 1000"

[services.bee]
command = "until test -f a1; do sleep 0.01; done; sleep 0.1; echo b-second; touch b1; until test -f a3; do sleep 0.01; done; sleep 0.1; echo b-fourth; exec sleep 1000"
"#,
    );
    p.xtask(&["start-bg"]).assert_ok();
    wait_for("the fourth line", LONG, || p.log("bee").contains("b-fourth"));
    p
}

#[test]
fn logs_of_the_stack_interleave_in_time_order_with_prefixes_and_timestamps() {
    let p = turn_takers();
    let run = p.xtask(&["logs"]);
    run.assert_ok();
    let lines: Vec<&str> = run.stdout.lines().filter(|l| !l.contains("── start ")).collect();
    assert_eq!(
        lines,
        ["a   | a-first", "bee | b-second", "a   | a-third", "bee | b-fourth"],
        "{run}"
    );
    p.xtask(&["logs", "-t"])
        .assert_ok()
        .assert_matches(r"(?m)^a   \| \d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}Z a-first$")
        .assert_matches(r"(?m)^bee \| \d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}Z b-fourth$");
    let raw = p.xtask(&["logs", "--no-prefix", "-n", "1", "a", "bee"]);
    assert_eq!(raw.stdout, "a-third\nb-fourth\n", "{raw}");
    let recent = p.xtask(&["logs", "--since", "10m", "bee"]);
    assert!(recent.stdout.contains("b-second"), "{recent}");
    let future = p.xtask(&["logs", "--since", "2099-01-01T00:00"]);
    future.assert_ok();
    assert_eq!(future.stdout, "", "{future}");
    p.xtask(&["logs", "--since", "yesterday-ish"])
        .assert_code(2)
        .assert_contains("neither a duration");
}

#[test]
fn logs_follow_takes_in_services_that_start_later() {
    use std::io::{BufRead, BufReader};
    let p = Project::new(
        r#"
[services.early]
command = "echo early-line; exec sleep 1000"

[services.late]
command = "echo late-line; exec sleep 1000"
"#,
    );
    p.xtask(&["start-bg", "early"]).assert_ok();
    let mut child = p
        .command(&["logs", "-f"])
        .stdout(std::process::Stdio::piped())
        .spawn()
        .expect("logs -f");
    let (tx, rx) = std::sync::mpsc::channel();
    let stdout = child.stdout.take().expect("stdout");
    std::thread::spawn(move || {
        for line in BufReader::new(stdout).lines().map_while(Result::ok) {
            if tx.send(line).is_err() {
                return;
            }
        }
    });
    let mut seen = Vec::new();
    let saw = |text: &str, seen: &mut Vec<String>| {
        wait_for(text, LONG, || {
            seen.extend(rx.try_iter());
            seen.iter().any(|l| l.contains(text))
        })
    };
    saw("early | early-line", &mut seen);
    p.xtask(&["start-bg", "late"]).assert_ok();
    saw("late  | late-line", &mut seen);
    let _ = child.kill();
    let _ = child.wait();
}

#[test]
fn a_python_service_under_tty_line_buffers_and_its_log_line_is_seen_at_once() {
    let p = Project::new(
        r#"
[services.py]
command = ["python3", "-c", "import sys, time; print('tty', sys.stdout.isatty(), '\x1b[31mred\x1b[0m'); print('ready at', int(time.time() * 1000)); time.sleep(1000)"]
tty = true
health = { log = "ready at" }
"#,
    );
    // Without a terminal Python would hold both lines in its buffer: no health, ever.
    p.xtask(&["start-bg"]).assert_ok();
    let log = p.log("py");
    assert!(log.contains("tty True \u{1b}[31mred\u{1b}[0m\n"), "{log:?}");
    assert!(log.contains("ready at "), "{log:?}");
    // How soon after the print the probe sees it is the benchmark's to measure.
    // The log keeps the colours; `logs` into a pipe strips them.
    let logs = p.xtask(&["logs", "py"]);
    assert!(logs.stdout.contains("tty True red\n"), "{logs}");
}
