//! Human output (symbols, colours, phases, tables), `--json`, and the terminal UI's
//! screen (`tui`). Only this module prints.
//!
//! anstream strips colour when the output is not a terminal or NO_COLOR is set.
//!
//! No write panics: a closed pipe (`xtask status | head -1`), a full disk or an I/O
//! error under the monitor's log loses the output, says so once on stderr, and the
//! command goes on to finish its work and exit with its own code.

use std::fmt::Display;
use std::io::Write;
use std::sync::OnceLock;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use anstream::{AutoStream, ColorChoice};
use anstyle::{AnsiColor, Style};

pub mod hint;
pub mod text;
#[cfg(feature = "tui")]
pub mod tui;

/// One line on stdout, never panicking.
macro_rules! println {
    ($($arg:tt)*) => {
        $crate::ui::write_line(false, format_args!($($arg)*))
    };
}

/// One line on stderr, never panicking.
macro_rules! eprintln {
    ($($arg:tt)*) => {
        $crate::ui::write_line(true, format_args!($($arg)*))
    };
}

const GREEN: Style = AnsiColor::Green.on_default();
const RED: Style = AnsiColor::Red.on_default().bold();
const YELLOW: Style = AnsiColor::Yellow.on_default();
const DIM: Style = Style::new().dimmed();
const BOLD: Style = Style::new().bold();

/// Where progress goes; `quiet` keeps only warnings, failures and results.
#[derive(Debug, Clone, Copy, Default)]
pub struct Ui {
    pub quiet: bool,
}

impl Ui {
    /// A step that succeeded.
    pub fn ok(&self, message: impl Display) {
        if !self.quiet {
            println!("{GREEN}✓{GREEN:#} {message}");
        }
    }

    /// The outcome of a whole command, printed even when quiet.
    pub fn done(&self, message: impl Display) {
        println!("{GREEN}✓{GREEN:#} {message}");
    }

    /// A step that failed; the command goes on or reports the error itself.
    pub fn fail(&self, message: impl Display) {
        println!("{RED}✗{RED:#} {message}");
    }

    pub fn warn(&self, message: impl Display) {
        println!("{YELLOW}!{YELLOW:#} {message}");
    }

    /// Progress and details.
    pub fn info(&self, message: impl Display) {
        if !self.quiet {
            println!("  {message}");
        }
    }

    /// Lines quoted from a log, indented and dimmed; each made safe for a terminal.
    pub fn quote(&self, lines: &[String]) {
        for line in lines {
            println!("    {DIM}│{DIM:#} {}", text::shown(line));
        }
    }

    /// One phase of `stop` or `cleanup`: `[k/5] title: what it did (time)`.
    pub fn phase(&self, k: usize, title: &str, detail: impl Display, took: Duration) {
        if !self.quiet {
            println!(
                "{BOLD}[{k}/5]{BOLD:#} {title}: {detail} {DIM}({}){DIM:#}",
                duration(took)
            );
        }
    }

    /// A result line that is printed even when quiet.
    pub fn result(&self, message: impl Display) {
        println!("{message}");
    }

    pub fn table(&self, header: &[&str], rows: Vec<Vec<String>>) {
        let mut table = comfy_table::Table::new();
        table.load_style(comfy_table::presets::NOTHING);
        table.set_header(header.iter().map(|h| h.to_string()));
        for row in rows {
            table.add_row(row);
        }
        let text = table.to_string();
        for line in text.lines() {
            println!("{}", line.trim_end());
        }
    }

    /// A line of the monitor's pipe protocol, written as is (anstream would strip the
    /// control character that marks it).
    pub fn protocol_line(&self, line: &str) {
        let mut out = std::io::stdout().lock();
        if let Err(err) = writeln!(out, "{line}").and_then(|()| out.flush()) {
            lost("stdout", &err);
        }
    }

    pub fn json(&self, value: &serde_json::Value) {
        let json = serde_json::to_string_pretty(value).unwrap_or_default();
        println!("{}", text::json_safe(&json));
    }
}

/// Output that another library renders (a completion script), written to stdout as
/// is. It is rendered into memory first: such a library panics on a failed write.
pub fn raw(write: impl FnOnce(&mut dyn std::io::Write)) {
    let mut rendered = Vec::new();
    write(&mut rendered);
    let mut out = std::io::stdout().lock();
    if let Err(err) = out.write_all(&rendered).and_then(|()| out.flush()) {
        lost("stdout", &err);
    }
}

/// Writes one line to stdout or stderr (colour stripped where anstream says so).
pub(crate) fn write_line(to_stderr: bool, args: std::fmt::Arguments<'_>) {
    // anstream decides afresh at each stream it makes (a terminal? NO_COLOR? CLICOLOR?
    // TERM?): at a million lines of `logs`, that decision cost more than the lines. It
    // cannot change while we run, so it is taken once per stream.
    static STDOUT: OnceLock<ColorChoice> = OnceLock::new();
    static STDERR: OnceLock<ColorChoice> = OnceLock::new();
    let result = if to_stderr {
        let choice = *STDERR.get_or_init(|| AutoStream::choice(&std::io::stderr()));
        writeln!(AutoStream::new(std::io::stderr().lock(), choice), "{args}")
    } else {
        let choice = *STDOUT.get_or_init(|| AutoStream::choice(&std::io::stdout()));
        writeln!(AutoStream::new(std::io::stdout().lock(), choice), "{args}")
    };
    if let Err(err) = result {
        lost(if to_stderr { "stderr" } else { "stdout" }, &err);
    }
}

/// Set once output could not be written.
static LOST: AtomicBool = AtomicBool::new(false);
/// Set once stdout's reader has gone (a closed pipe).
static STDOUT_CLOSED: AtomicBool = AtomicBool::new(false);

/// True once stdout's reader has gone: a command that only prints (`logs -f`) ends.
pub fn stdout_closed() -> bool {
    STDOUT_CLOSED.load(Ordering::SeqCst)
}

/// `stdout_closed`, also seen without writing: stdout is a pipe whose reading end is
/// closed (poll says POLLERR), so that `logs -f | head -1` ends while the log is quiet,
/// as `tail -f` does. One system call: for loops that pause between reads, not per line.
pub fn stdout_gone() -> bool {
    use nix::poll::{PollFd, PollFlags, PollTimeout, poll};
    if stdout_closed() {
        return true;
    }
    let stdout = std::io::stdout();
    let mut fds = [PollFd::new(std::os::fd::AsFd::as_fd(&stdout), PollFlags::empty())];
    let gone = poll(&mut fds, PollTimeout::ZERO).is_ok_and(|ready| ready > 0)
        && fds[0]
            .revents()
            .is_some_and(|r| r.intersects(PollFlags::POLLERR | PollFlags::POLLHUP));
    if gone {
        STDOUT_CLOSED.store(true, Ordering::SeqCst);
    }
    gone
}

/// Says once, on stderr (when that still works), that output is being lost. A closed
/// pipe is the reader's choice (`| head`) and is not worth a word.
fn lost(stream: &str, err: &std::io::Error) {
    if err.kind() == std::io::ErrorKind::BrokenPipe {
        if stream == "stdout" {
            STDOUT_CLOSED.store(true, Ordering::SeqCst);
        }
        return;
    }
    if LOST.swap(true, Ordering::SeqCst) {
        return;
    }
    let _ = writeln!(
        std::io::stderr(),
        "xtask: cannot write {stream} ({err}); its output is lost from here on, the command goes on"
    );
}

/// An error that ends the command, on stderr.
pub fn error(message: impl Display) {
    eprintln!("{RED}error:{RED:#} {message}");
}

/// The wall-clock time of day (UTC), for the monitor's event log: `14:03:07`.
pub fn timestamp() -> String {
    let secs = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_secs());
    format!("{:02}:{:02}:{:02}", secs / 3600 % 24, secs / 60 % 60, secs % 60)
}

/// The colour of the `index`th service's name, in the foreground stream, `logs` and the
/// terminal UI alike.
pub fn service_color(index: usize) -> AnsiColor {
    const PALETTE: [AnsiColor; 6] = [
        AnsiColor::Cyan,
        AnsiColor::Magenta,
        AnsiColor::Blue,
        AnsiColor::Green,
        AnsiColor::Yellow,
        AnsiColor::Red,
    ];
    PALETTE
        .get(index.checked_rem(PALETTE.len()).unwrap_or(0))
        .copied()
        .unwrap_or(AnsiColor::Cyan)
}

/// One line of the foreground stream: the service's name in its colour, aligned, then
/// a `|` before a log line or a `▸` before a lifecycle event. The line is made safe for
/// a terminal.
pub fn stream_line(index: usize, name: &str, width: usize, marker: char, line: &str) {
    let style = service_color(index).on_default();
    println!("{style}{name:<width$} {marker}{style:#} {}", text::shown(line));
}

/// A log line without a prefix (`logs --no-prefix`, or one service's log), made safe
/// for a terminal.
pub fn log_line(line: &str) {
    println!("{}", text::shown(line));
}

/// Text of our own, or of the user's own files, as it is (`check --print`).
pub fn raw_line(text: &str) {
    println!("{text}");
}

/// Bytes another process wrote, exactly as they are (`logs --raw`): the one way to
/// get them past the sanitiser, for those who ask.
pub fn raw_bytes(bytes: &[u8]) {
    let mut out = std::io::stdout().lock();
    if let Err(err) = out.write_all(bytes).and_then(|()| out.flush()) {
        lost("stdout", &err);
    }
}

/// A duration as people read it: `4ms`, `152ms`, `1.52s`, `2m 05s`.
pub fn duration(d: Duration) -> String {
    let ms = d.as_millis();
    if ms < 1000 {
        format!("{ms}ms")
    } else if ms < 60_000 {
        format!("{:.2}s", d.as_secs_f64())
    } else {
        let s = d.as_secs();
        format!("{}m {:02}s", s / 60, s % 60)
    }
}

/// An uptime in whole units: `42s`, `5m 02s`, `3h 07m`, `2d 04h`.
pub fn uptime(d: Duration) -> String {
    let s = d.as_secs();
    match s {
        0..60 => format!("{s}s"),
        60..3600 => format!("{}m {:02}s", s / 60, s % 60),
        3600..86400 => format!("{}h {:02}m", s / 3600, s % 3600 / 60),
        _ => format!("{}d {:02}h", s / 86400, s % 86400 / 3600),
    }
}

/// A byte count in binary units, as `ps` users expect: `812K`, `14.2M`.
pub fn bytes(n: u64) -> String {
    const UNITS: [&str; 4] = ["K", "M", "G", "T"];
    let mut value = n as f64 / 1024.0;
    for unit in UNITS {
        if value < 1024.0 || unit == "T" {
            return if value < 10.0 {
                format!("{value:.1}{unit}")
            } else {
                format!("{value:.0}{unit}")
            };
        }
        value /= 1024.0;
    }
    format!("{n}B")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn durations_read_naturally() {
        let cases = [(4, "4ms"), (152, "152ms"), (1520, "1.52s"), (125_000, "2m 05s")];
        for (ms, expected) in cases {
            assert_eq!(duration(Duration::from_millis(ms)), expected);
        }
    }

    #[test]
    fn uptimes_use_whole_units() {
        let cases = [
            (42, "42s"),
            (302, "5m 02s"),
            (3 * 3600 + 7 * 60, "3h 07m"),
            (2 * 86400 + 4 * 3600, "2d 04h"),
        ];
        for (s, expected) in cases {
            assert_eq!(uptime(Duration::from_secs(s)), expected);
        }
    }

    #[test]
    fn bytes_use_binary_units() {
        assert_eq!(bytes(812 * 1024), "812K");
        assert_eq!(bytes(14_900_000), "14M");
        assert_eq!(bytes(3 * 1024 * 1024 / 2), "1.5M");
    }
}
