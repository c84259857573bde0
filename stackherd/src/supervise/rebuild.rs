//! What the supervisor does when a service's watched files change: once they have been
//! quiet for `watch_debounce` (one quiet period per service, however many files a save
//! or a `git checkout` touches), its build step on a thread of its own (changes
//! meanwhile coalesce into one more build), then, only if it succeeded, the stop and start of the service with its health check, and of the
//! dependents that asked for it (`restart_with`, or `restart` on the dependency). A
//! failed build leaves the running instance alone.

use std::path::Path;
use std::thread;
use std::time::{Duration, Instant};

use super::follow::Cause;
use super::watch::Change;
use super::{Event, Quiet, Supervisor};
use crate::error::Result;
use crate::os::process::printable;
use crate::os::wake;
use crate::poll;
use crate::service::build::Rebuild;
use crate::state::{BuildNote, Lock, now_ms};
use crate::ui;

/// The longest a quiet period waits for the changes to stop: ten times `debounce`, and
/// at least `QUIET_AT_MOST`.
fn longest_quiet(debounce: Duration) -> Duration {
    debounce.saturating_mul(10).max(QUIET_AT_MOST)
}

/// See `longest_quiet`.
const QUIET_AT_MOST: Duration = Duration::from_secs(2);

/// What a build thread sends back.
pub(super) struct BuildReport {
    service: String,
    result: std::result::Result<Duration, String>,
}

impl Supervisor<'_> {
    /// Takes the changes in: each starts or extends its service's quiet period. A
    /// service whose quiet period is over is built, or, when it is building, marked to
    /// build once more.
    pub(super) fn watch_changes(&mut self) {
        let Some(watcher) = &mut self.watcher else { return };
        let (changes, warnings) = watcher.changes();
        for warning in warnings {
            self.ctx.ui.warn(warning);
        }
        let now = Instant::now();
        let debounce = self.ctx.config.project.watch_debounce;
        let until = poll::later(now, debounce);
        for Change { service, path } in changes {
            // A service a command stopped is not watched: a change does not bring it back.
            if !self.watched.contains_key(&service) {
                continue;
            }
            match self.quiet.get_mut(&service) {
                Some(quiet) => {
                    // Files written without pause (a log in the watched tree) would
                    // hold the build back for ever: it comes after `longest_quiet`.
                    quiet.until = until.min(poll::later(quiet.since, longest_quiet(debounce)));
                    quiet.more |= quiet.last != path;
                    quiet.last = path;
                }
                None => {
                    let quiet = Quiet {
                        since: now,
                        until,
                        last: path,
                        more: false,
                    };
                    self.quiet.insert(service, quiet);
                }
            }
        }
        let over: Vec<String> = self
            .quiet
            .iter()
            .filter(|(_, q)| q.until <= now)
            .map(|(name, _)| name.clone())
            .collect();
        for name in over {
            let Some(quiet) = self.quiet.remove(&name) else {
                continue;
            };
            let what = self.what_changed(&quiet);
            let Some(w) = self.watched.get_mut(&name) else { continue };
            if !w.building {
                self.start_build(&name, &what);
            } else if !std::mem::replace(&mut w.build_again, true) {
                self.event(&name, format!("{what} during the build; one more build follows"));
            }
        }
    }

    /// "src/main.rs changed", "src/main.rs and other files changed": relative to the
    /// project.
    fn what_changed(&self, quiet: &Quiet) -> String {
        let root = &self.ctx.config.root;
        let last = quiet
            .last
            .strip_prefix(root)
            .or_else(|_| quiet.last.strip_prefix(root.canonicalize().unwrap_or_default()))
            .unwrap_or(&quiet.last);
        let shown = if last == Path::new("") {
            ".".to_string()
        } else {
            last.display().to_string()
        };
        let shown = printable(&shown);
        if quiet.more {
            format!("{shown} and other files changed")
        } else {
            format!("{shown} changed")
        }
    }

    fn start_build(&mut self, name: &str, what: &str) {
        let Some(service) = self.ctx.config.service(name) else {
            return;
        };
        let Some(build) = &service.build else {
            self.event(name, format!("{what}; restarting"));
            self.pending.push(Event::Rebuilt {
                service: name.to_string(),
                result: Ok(None),
            });
            return;
        };
        let log = match self.ctx.registry.open_log(name) {
            Ok(log) => log,
            Err(err) => {
                self.event(name, format!("{what}, but the build cannot run: {err}"));
                return;
            }
        };
        let job = Rebuild {
            service: name.to_string(),
            build: build.clone(),
            timeout: service.build_timeout,
            root: self.ctx.config.root.clone(),
            log,
        };
        if let Some(w) = self.watched.get_mut(name) {
            w.building = true;
        }
        self.event(name, format!("{what}; building: {}", build.command));
        let (tx, interrupts) = (self.builds.0.clone(), self.interrupts);
        let service = name.to_string();
        thread::spawn(move || {
            let result = job.run(interrupts);
            if tx.send(BuildReport { service, result }).is_ok() {
                wake::wake();
            }
        });
    }

    /// Turns finished builds into events, or into one more build when files changed
    /// while one ran.
    pub(super) fn collect_builds(&mut self) {
        let reports: Vec<BuildReport> = self.builds.1.try_iter().collect();
        for report in reports {
            let Some(w) = self.watched.get_mut(&report.service) else {
                continue;
            };
            w.building = false;
            if std::mem::take(&mut w.build_again) {
                self.start_build(&report.service, "files changed during the last build");
                continue;
            }
            self.pending.push(Event::Rebuilt {
                service: report.service,
                result: report.result.map(Some),
            });
        }
    }

    /// A build ended (or a service without one changed): restart it, and the dependents
    /// with `restart_with` once it is healthy; or report the failure and leave it be.
    pub(super) fn on_rebuilt(
        &mut self,
        name: &str,
        result: std::result::Result<Option<Duration>, String>,
        lock: &Lock,
    ) -> Result<()> {
        let took = match result {
            Ok(took) => took,
            Err(why) => {
                self.update(name, lock, |r| {
                    r.last_build = Some(BuildNote {
                        ok: false,
                        at_ms: now_ms(),
                    });
                })?;
                self.event(name, format!("build failed: {why}; the running instance stays"));
                return Ok(());
            }
        };
        if let Some(took) = took {
            self.event(name, format!("built in {}; restarting", ui::duration(took)));
        }
        self.hold_dependents(name, Cause::Rebuild, lock)?;
        self.take_down(name, lock);
        if let Some(w) = self.watched.get_mut(name) {
            w.restarts = 0;
        }
        self.failed.remove(name);
        self.respawn(name, lock)?;
        self.update(name, lock, |r| {
            r.last_build = took.map(|_| BuildNote {
                ok: true,
                at_ms: now_ms(),
            });
        })
    }
}
