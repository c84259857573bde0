//! The supervisor's care of the log relays it started: a relay that ends with exit 0
//! has written everything its services wrote, and lets go of them; one that dies
//! (killed, out of memory) while its services run is replaced at once by a new relay
//! that reads on from the same pipes and terminals (held by `relays`), and the records
//! say so, for `status`.

use std::fmt::Write as _;

use super::{Event, Supervisor};
use crate::error::Result;
use crate::os::{Exit, ServiceProcess};
use crate::service::relays;
use crate::service::relays::Kept;
use crate::state::{Entry, Lock, RelayNote, log_writer, now_ms};

impl Supervisor<'_> {
    /// A relay of ours ended; `read` is what it read.
    pub(super) fn relay_ended(&mut self, pid: i32, exit: Exit, read: Vec<Kept>) {
        if exit == Exit::Code(0) {
            return;
        }
        // The services whose instance still runs get a new relay; the others' output
        // ended with them.
        let running: Vec<Kept> = read
            .into_iter()
            .filter(|k| self.watched.get(&k.service).is_some_and(|w| w.process.is_some()))
            .collect();
        if running.is_empty() {
            return;
        }
        let names: Vec<String> = running.iter().map(|k| k.service.clone()).collect();
        let replaced = relays::start(running);
        for name in names {
            let mut text = format!("its log relay (pid {pid}) died ({exit})");
            let relay = match &replaced {
                Ok(relay) => {
                    let _ = write!(
                        text,
                        "; a new relay (pid {}) writes its log again, the lines the old one held are lost",
                        relay.pid
                    );
                    Some(*relay)
                }
                Err(errno) => {
                    let _ = write!(
                        text,
                        "; no new relay could start ({}): its output is lost until it restarts",
                        errno.desc().to_lowercase()
                    );
                    None
                }
            };
            self.event(&name, text);
            self.pending.push(Event::RelayReplaced { service: name, relay });
        }
    }

    /// Whether the relay recorded for a service is gone without having marked the end
    /// of its output: it died (a relay this supervisor did not start, and so cannot
    /// replace).
    pub(super) fn relay_gone(&self, name: &str) -> bool {
        let Some(Entry::Record(record)) = self.ctx.registry.entry(name) else {
            return false;
        };
        let Some((pid, start_time)) = record.relay else {
            return false;
        };
        !ServiceProcess { pid, start_time }.is_alive() && !log_writer::ended_since(&record.log, record.started_at_ms)
    }

    /// Records a relay's death, and its successor if it has one.
    pub(super) fn on_relay_replaced(&mut self, name: &str, relay: Option<ServiceProcess>, lock: &Lock) -> Result<()> {
        self.update(name, lock, |r| {
            if let Some(relay) = relay {
                r.relay = Some((relay.pid, relay.start_time));
            }
            r.relay_lost = Some(RelayNote {
                at_ms: now_ms(),
                restored: relay.is_some(),
            });
        })
    }
}
