//! `start [SERVICE...]`: start in the foreground, then supervise with the logs in one
//! stream until Ctrl+C, which stops what it supervises; or, with `--tui`, show the
//! terminal UI over a started stack until it quits.

use super::ui::Quit;
use crate::error::{Error, Result, exit};
use crate::lifecycle::prepare::{self, Prepare};
use crate::lifecycle::stop::{self, Scope};
use crate::lifecycle::supervise::{Follower, Mode, Supervisor};
use crate::lifecycle::takeover::{Handover, forget_self, take_over_and_start};
use crate::lifecycle::{Context, monitor};
use crate::os::interrupts::Interrupts;
use crate::os::memory;
use crate::ui::tui;

pub fn run(ctx: &Context, names: &[String], switches: Prepare, abort_on_failure: bool) -> Result<u8> {
    let wanted = ctx.select_active(names)?;
    memory::one_malloc_arena();
    let interrupts = Interrupts::install();
    monitor::become_subreaper();
    let scope = prepare::selection(ctx, &wanted);
    let follower = Follower::new(ctx, &scope.iter().cloned().collect::<Vec<_>>());
    let abort = abort_on_failure || ctx.config.project.abort_on_failure;
    // Made before the start, so that its file watch sees the edits made during it.
    let mut supervisor = Supervisor::new(ctx, Mode::Foreground(follower), scope, interrupts).abort_on_failure(abort);
    take_over_and_start(ctx, &wanted, interrupts, Handover::Foreground(switches))?;
    supervisor.take_in_the_start();
    ctx.ui.info("supervising; Ctrl+C stops everything");
    let result = supervisor.run();
    forget_self(ctx);
    result
}

/// `start --tui`: starts as `start-bg` does (a detached monitor supervises), shows the
/// terminal UI, and when it quits (q, Ctrl+C, SIGTERM) stops what the start covers, as
/// Ctrl+C ends a foreground start; a Ctrl+C during that stop forces it.
pub fn with_ui(ctx: &Context, names: &[String], switches: Prepare) -> Result<u8> {
    let wanted = ctx.select_active(names)?;
    // Refused before anything starts, not after.
    if !tui::is_terminal() {
        return Err(Error::NoTerminal {
            why: "stdout is not a terminal".into(),
        });
    }
    let code = super::start_bg::run(ctx, &wanted, false, switches)?;
    if code != exit::OK {
        return Ok(code);
    }
    let shown = super::ui::run(ctx, Quit::StopsTheStart);
    let interrupts = Interrupts::install();
    if interrupts.count() == 0 {
        interrupts.raise();
    }
    ctx.ui.warn("stopping (Ctrl+C again to force)");
    let lock = ctx.registry.lock("start --tui (stopping)")?;
    // The whole project, its monitor included, when the start covered all of it.
    let scope = if names.is_empty() {
        Scope::Project
    } else {
        Scope::Services(prepare::selection(ctx, &wanted).into_iter().collect())
    };
    let options = stop::Options {
        interrupts: Some(interrupts),
        ..stop::Options::default()
    };
    stop::stop_services(ctx, &scope, options, &lock)?;
    shown.map(|()| exit::OK)
}
