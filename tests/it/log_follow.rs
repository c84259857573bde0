//! `logs -f` follows a log through its rotations: every line is printed once and in
//! order however many times the log rotated between two reads, lines rotated away
//! before they could be read are reported, and a line without its newline (a prompt)
//! is shown after a short quiet time.

use std::io::BufRead;
use std::process::{Child, Stdio};
use std::sync::mpsc::Receiver;
use std::time::{Duration, Instant};

use crate::harness::{Project, wait_for};

const LONG: Duration = Duration::from_secs(60);

/// A running `logs -f` (or foreground `start`) and the lines it printed; killed (by its
/// PID) when dropped, so a failed assertion leaves nothing running (the project's own
/// drop stops what a `start` started).
struct Follow {
    child: Child,
    lines: Receiver<String>,
    seen: Vec<String>,
}

impl Follow {
    fn start(p: &Project, service: &str) -> Follow {
        Follow::spawn(p, &["logs", "-f", "-n", "1", service])
    }

    fn spawn(p: &Project, args: &[&str]) -> Follow {
        let mut child = p.command(args).stdout(Stdio::piped()).spawn().expect("logs -f");
        let stdout = child.stdout.take().expect("stdout");
        let (tx, lines) = std::sync::mpsc::channel();
        std::thread::spawn(move || {
            for line in std::io::BufReader::new(stdout).lines().map_while(Result::ok) {
                if tx.send(line).is_err() {
                    return;
                }
            }
        });
        Follow {
            child,
            lines,
            seen: Vec::new(),
        }
    }

    /// Whether a printed line contains `text` (taking in what was printed since).
    fn saw(&mut self, text: &str) -> bool {
        self.seen.extend(self.lines.try_iter());
        self.seen.iter().any(|l| l.contains(text))
    }

    fn wait_for(&mut self, text: &str, timeout: Duration) {
        let deadline = Instant::now() + timeout;
        wait_for(&format!("{text:?} to be printed"), timeout, || {
            let saw = self.saw(text);
            // What was printed, to tell why it was not.
            assert!(saw || Instant::now() < deadline, "{text:?} not among {:?}", self.seen);
            saw
        });
    }
}

impl Drop for Follow {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// A project whose service says it waits, waits for the file `go` in the project root
/// (its working directory), then runs `then`.
fn waiting_service(rotation: &str, then: &str) -> Project {
    Project::new(&format!(
        r#"
[services.talk]
{rotation}
command = "echo waiting; while [ ! -e go ]; do sleep 0.05; done; {then}; exec sleep 1000"
"#
    ))
}

/// Starts the service and a `logs -f` of it that follows from before the service's
/// output begins (it printed the service's first line), then lets the service go on.
fn follow_from_the_start(p: &Project) -> Follow {
    p.xtask(&["start-bg"]).assert_ok();
    let mut follow = Follow::start(p, "talk");
    // The service's first line is history (`-n 1`), printed after the reader was set up.
    follow.wait_for("waiting", LONG);
    p.write("go", "");
    follow
}

/// The numbers of the `line N …` lines printed, in the order printed.
fn numbers(seen: &[String]) -> Vec<u64> {
    seen.iter()
        .filter_map(|l| l.strip_prefix("line ")?.split(' ').next()?.parse().ok())
        .collect()
}

#[test]
fn follow_counts_every_line_across_50_rotations_in_bursts() {
    // 10 bursts of 2000 lines of 45 bytes (about 5 rotations each, between two reads),
    // 50 rotations in all; 20 kept files hold more than a burst.
    let bursts = "for b in 0 1 2 3 4 5 6 7 8 9; do \
                  seq -f 'line %g padding-padding-padding-padding' $((b*2000+1)) $((b*2000+2000)); \
                  sleep 0.3; done; echo all-written";
    let p = waiting_service("log_max_size = \"16KB\"\nlog_keep = 20", bursts);
    let mut follow = follow_from_the_start(&p);
    follow.wait_for("all-written", LONG);
    let rotated = (1..=20)
        .filter(|n| p.path(&format!(".xtask/logs/talk.log.{n}")).exists())
        .count();
    assert_eq!(rotated, 20, "the log did not rotate past log_keep");
    let numbers = numbers(&follow.seen);
    let expected: Vec<u64> = (1..=20_000).collect();
    if numbers != expected {
        let missing = expected.iter().filter(|n| !numbers.contains(n)).count();
        panic!(
            "`logs -f` printed {} numbered lines, {missing} missing; first gap after {:?}",
            numbers.len(),
            numbers.windows(2).find(|w| w[1] != w[0] + 1).map(|w| w[0])
        );
    }
    assert!(
        !follow.seen.iter().any(|l| l.contains("rotated away")),
        "nothing was lost, yet: {:?}",
        follow.seen.iter().find(|l| l.contains("rotated away"))
    );
}

#[test]
fn follow_reports_lines_rotated_away_before_it_could_read_them() {
    // 200000 lines (9 MB) in one burst with 2 kept files of 16 KB: most are removed
    // before any reader could get to them.
    let burst = "seq -f 'line %g padding-padding-padding' 1 200000; echo all-written";
    let p = waiting_service("log_max_size = \"16KB\"\nlog_keep = 2", burst);
    let mut follow = follow_from_the_start(&p);
    follow.wait_for("all-written", LONG);
    let notes: Vec<&String> = follow.seen.iter().filter(|l| l.contains("rotated away")).collect();
    assert!(!notes.is_empty(), "lines were lost without a word");
    assert!(
        // Counted where the time indexes tell; a file removed before its index could be
        // read leaves only the fact.
        notes
            .iter()
            .all(|n| n.contains(" bytes of this log were rotated away") || n.contains("may have been rotated away")),
        "{notes:?}"
    );
    let numbers = numbers(&follow.seen);
    assert!(
        numbers.len() < 200_000,
        "every line was read: the burst did not outrun the reader"
    );
    assert!(
        numbers.windows(2).all(|w| w[0] < w[1]),
        "lines out of order or repeated"
    );
    assert_eq!(numbers.last(), Some(&200_000), "the last line is missing");
}

#[test]
fn a_prompt_is_shown_by_logs_follow_within_a_second_and_its_end_after_it() {
    let prompt = "printf 'Password prompt> '; while [ ! -e answer ]; do sleep 0.05; done; echo accepted";
    let p = waiting_service("", prompt);
    let mut follow = follow_from_the_start(&p);
    let mut written: Option<Instant> = None;
    wait_for("the prompt in `logs -f`", LONG, || {
        if written.is_none() && p.log("talk").contains("Password prompt> ") {
            written = Some(Instant::now());
        }
        follow.saw("Password prompt> ")
    });
    let shown_after = written.map_or(Duration::ZERO, |at| at.elapsed());
    assert!(
        shown_after < Duration::from_secs(1),
        "shown {shown_after:?} after it was in the log"
    );
    // History shows it too, as it is so far.
    p.xtask(&["logs", "talk"]).assert_contains("Password prompt> ");

    p.write("answer", "");
    follow.wait_for("accepted", LONG);
    let prompts = follow.seen.iter().filter(|l| l.contains("Password prompt>")).count();
    assert_eq!(prompts, 1, "the prompt's start was printed again: {:?}", follow.seen);
    assert!(
        follow.seen.iter().any(|l| l == "accepted"),
        "the line's end is not a line of its own: {:?}",
        follow.seen
    );
    p.xtask(&["logs", "talk"]).assert_contains("Password prompt> accepted");
}

#[test]
fn the_foreground_stream_shows_a_prompt() {
    let p = waiting_service("", "printf 'Password prompt> '");
    let mut start = Follow::spawn(&p, &["start"]);
    wait_for("the stack to be up", LONG, || p.all_up());
    p.write("go", "");
    start.wait_for("talk | Password prompt> ", Duration::from_secs(10));
}

/// `logs -f SERVICE | head -1` on a log that has gone quiet: once `line` was printed and
/// the reader has gone, `logs -f` ends within a second or two, as `tail -f` does,
/// instead of waiting for a line nobody reads.
pub(crate) fn follow_ends_when_its_reader_goes(p: &Project, service: &str, line: &str) {
    let mut child = p
        .command(&["logs", "-f", service])
        .stdout(Stdio::piped())
        .spawn()
        .expect("logs -f");
    let stdout = child.stdout.take().expect("stdout");
    let (tx, seen) = std::sync::mpsc::channel();
    let wanted = line.to_string();
    // Reads until the line, then closes the pipe as `head -1` does.
    std::thread::spawn(move || {
        let found = std::io::BufReader::new(stdout)
            .lines()
            .map_while(Result::ok)
            .any(|l| l.contains(&wanted));
        let _ = tx.send(found);
    });
    let found = seen.recv_timeout(LONG).unwrap_or(false);
    let closed = Instant::now();
    let mut ended = None;
    let in_time = crate::harness::poll(Duration::from_secs(5), || {
        ended = child.try_wait().expect("wait for logs -f");
        ended.is_some()
    });
    if !in_time {
        let _ = child.kill();
        let _ = child.wait();
    }
    assert!(found, "`logs -f {service}` never printed {line:?}");
    assert!(in_time, "`logs -f {service}` still runs 5 s after its reader went away");
    assert!(
        closed.elapsed() < Duration::from_secs(2),
        "`logs -f {service}` took {:?} to notice its reader had gone",
        closed.elapsed()
    );
}

#[test]
fn logs_follow_of_a_quiet_log_ends_when_its_reader_goes() {
    let p = Project::new("[services.quiet]\ncommand = \"echo ready; exec sleep 1000\"\n");
    p.xtask(&["start-bg"]).assert_ok();
    wait_for("the line in the log", LONG, || p.log("quiet").contains("ready"));
    follow_ends_when_its_reader_goes(&p, "quiet", "ready");
}
