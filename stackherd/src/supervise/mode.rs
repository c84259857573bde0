//! Where a supervisor's output goes: a foreground `start` prints the services' logs and
//! its events in one stream; the monitor writes its events to its log.

use std::fmt;
use std::path::PathBuf;

use crate::poll::{self, Backoff};
use crate::service::Context;
use crate::state::log_writer;
use crate::state::logs::LogReader;
use crate::ui;

/// The longest a foreground start waits for its services' last lines after its stop.
const DRAIN_AT_MOST: std::time::Duration = std::time::Duration::from_secs(2);

/// A foreground `start` prints logs and events; the monitor writes events to its log.
pub enum Mode {
    Foreground(Follower),
    Monitor,
}

/// The foreground stream: every supervised service's new log lines, prefixed with its
/// name in its colour.
pub struct Follower {
    logs: Vec<(String, LogReader)>,
    width: usize,
}

impl Follower {
    /// Starts at the current end of each log, so that only what is written from now on
    /// is shown.
    pub fn new(ctx: &Context, services: &[String]) -> Follower {
        let logs = services
            .iter()
            .map(|s| (s.clone(), LogReader::at_end(&ctx.registry.log_path(s))))
            .collect();
        let width = services.iter().map(String::len).max().unwrap_or(0);
        Follower { logs, width }
    }

    pub(super) fn print_new(&mut self) {
        for (index, (service, reader)) in self.logs.iter_mut().enumerate() {
            for line in reader.new_lines().unwrap_or_default() {
                ui::stream_line(index, service, self.width, '|', &line);
            }
        }
    }

    /// Prints what the services wrote until their logs are complete: a relay writes a
    /// service's last lines once the service's output is closed, then marks the end in
    /// the log's time index. `open` holds each log still copied, with the start of the
    /// run it copies. Bounded, in case a relay cannot.
    pub(super) fn drain(&mut self, open: &[(PathBuf, u64)]) {
        poll::wait_until(poll::after(DRAIN_AT_MOST), Backoff::fast(), || {
            self.print_new();
            open.iter()
                .all(|(log, started)| log_writer::ended_since(log, *started))
                .then_some(())
        });
        self.print_new();
    }

    /// When an unfinished line (a prompt) of a log is due to be shown: the supervisor,
    /// which sleeps until a file changes, wakes then to show it.
    pub(super) fn unfinished_due(&self) -> Option<std::time::Instant> {
        self.logs.iter().filter_map(|(_, reader)| reader.unfinished_due()).min()
    }

    pub(super) fn event(&self, service: &str, text: impl fmt::Display) {
        let index = self.logs.iter().position(|(s, _)| s == service).unwrap_or(0);
        ui::stream_line(index, service, self.width, '▸', &text.to_string());
    }
}
