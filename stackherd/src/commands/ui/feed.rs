//! What the UI's log pane and events strip show: the last lines of one service's log or
//! of all of them (interleaved in time order, as `logs` does), then what is appended,
//! kept in a bounded buffer; and the supervisor's event log.

use std::collections::VecDeque;

use crate::service::Context;
use crate::state::logs::{self, LogReader};
use crate::ui::tui::LogLine;

/// The most lines kept in the log pane; older ones are dropped as new ones arrive.
pub const KEPT_LINES: usize = 10_000;
/// The lines of each log read when the pane is filled.
const HISTORY: usize = 1000;
/// The most events kept.
const KEPT_EVENTS: usize = 200;

/// The log pane's lines and the readers that follow their files.
pub struct Feed {
    pub lines: VecDeque<LogLine>,
    readers: Vec<(usize, LogReader)>,
}

impl Feed {
    /// The lines of the services at `indexes` of `names` (each index a service), the
    /// last `HISTORY` of each, merged in the order they were written.
    pub fn load(ctx: &Context, names: &[String], indexes: &[usize]) -> Feed {
        // Readers first, so that what is written while the history is read is followed.
        let readers = indexes
            .iter()
            .filter_map(|&i| Some((i, LogReader::at_end(&ctx.registry.log_path(names.get(i)?)))))
            .collect();
        let chosen: Vec<String> = indexes.iter().filter_map(|&i| names.get(i).cloned()).collect();
        let lines = super::super::logs::history(ctx, &chosen, HISTORY, None)
            .into_iter()
            .filter_map(|(at, line)| {
                Some(LogLine {
                    service: *indexes.get(at)?,
                    text: line.text(),
                })
            })
            .collect();
        let mut feed = Feed { lines, readers };
        feed.trim();
        feed
    }

    /// Takes in what was appended since the last call; returns how many lines were
    /// added and how many were dropped from the front to stay within `KEPT_LINES`.
    pub fn poll(&mut self) -> (usize, usize) {
        let mut added = 0usize;
        for (service, reader) in &mut self.readers {
            for text in reader.new_lines().unwrap_or_default() {
                self.lines.push_back(LogLine {
                    service: *service,
                    text,
                });
                added = added.saturating_add(1);
            }
        }
        (added, self.trim())
    }

    fn trim(&mut self) -> usize {
        let excess = self.lines.len().saturating_sub(KEPT_LINES);
        self.lines.drain(..excess);
        excess
    }
}

/// The supervisor's events, and what the UI's own actions printed.
pub struct Events {
    pub lines: VecDeque<String>,
    reader: LogReader,
}

impl Events {
    pub fn load(ctx: &Context) -> Events {
        let path = ctx.registry.monitor_log_path();
        let reader = LogReader::at_end(&path);
        let mut events = Events {
            lines: logs::tail(&path, 20).into(),
            reader,
        };
        events.trim();
        events
    }

    /// Takes in the supervisor's new events; true when there were any.
    pub fn poll(&mut self) -> bool {
        let new = self.reader.new_lines().unwrap_or_default();
        let any = !new.is_empty();
        self.lines.extend(new);
        self.trim();
        any
    }

    pub fn push(&mut self, line: String) {
        self.lines.push_back(line);
        self.trim();
    }

    fn trim(&mut self) {
        let excess = self.lines.len().saturating_sub(KEPT_EVENTS);
        self.lines.drain(..excess);
    }
}
