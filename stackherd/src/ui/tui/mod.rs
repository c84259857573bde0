//! The terminal UI's screen: what `cargo xtask ui` shows, drawn with ratatui from plain
//! values the command hands over (`Screen`), and the terminal it is drawn on
//! (`terminal`). Nothing here knows services or records.

mod ansi;
mod terminal;
mod widgets;

use std::collections::VecDeque;

pub use ansi::plain;
pub use terminal::{Input, Tui};

/// One service's row in the table, as text.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Row {
    pub name: String,
    pub state: String,
    pub health: String,
    pub pid: String,
    pub uptime: String,
    pub cpu: String,
    pub rss: String,
    pub restarts: String,
    pub ports: String,
    /// A watched service's last build: `ok 12s ago`, `failed 3s ago`.
    pub build: String,
    pub tone: Tone,
}

/// How a row's state reads at a glance.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub enum Tone {
    /// Running and healthy, or completed.
    Good,
    /// Starting, restarting, stopping.
    Busy,
    /// Failed, exited, unhealthy, stale.
    Bad,
    /// Not running.
    #[default]
    Idle,
}

/// One line of the log pane: the index of its service (for the prefix and its colour)
/// and the line as written, colour codes included.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LogLine {
    pub service: usize,
    pub text: String,
}

/// The log pane: which lines, where it is scrolled to, what is marked.
pub struct LogPane<'a> {
    pub title: String,
    pub lines: &'a VecDeque<LogLine>,
    /// Service names by index, for the prefixes.
    pub names: &'a [String],
    /// Prefix each line with its service's name, as the foreground stream does.
    pub prefixed: bool,
    /// One past the last line shown; `None` follows the end.
    pub bottom: Option<usize>,
    /// The marked line (a search match, what `c` copies).
    pub cursor: Option<usize>,
    /// The search, highlighted in the lines shown.
    pub query: Option<&'a str>,
}

/// Everything on the screen at one moment.
pub struct Screen<'a> {
    /// The top line: the project, and who supervises it.
    pub title: String,
    pub rows: &'a [Row],
    pub selected: usize,
    pub log: LogPane<'a>,
    /// The supervisor's last events and what the UI's actions printed, oldest first.
    pub events: &'a VecDeque<String>,
    /// A search being typed (without its `/`).
    pub prompt: Option<&'a str>,
    /// A line for the user above the keys ("nothing runs: S starts …").
    pub notice: Option<&'a str>,
    /// The UI has the mouse (wheel scrolls); otherwise the terminal's selection works.
    pub mouse: bool,
    /// Colours allowed (not NO_COLOR).
    pub color: bool,
}

/// Whether the UI can be shown: stdout is a terminal.
pub fn is_terminal() -> bool {
    use std::io::IsTerminal;
    std::io::stdout().is_terminal()
}

/// What the last draw laid out, for paging.
#[derive(Debug, Clone, Copy, Default)]
pub struct Drawn {
    pub log_height: u16,
}
