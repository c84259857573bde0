//! `start [SERVICE...]`: start in the foreground, then supervise with the logs in one
//! stream until Ctrl+C, which stops what it supervises; or, with `--tui`, show the
//! terminal UI over a started stack until it quits.

use crate::error::Result;
use crate::orchestrate::prepare;
use crate::orchestrate::prepare::Prepare;

use crate::orchestrate::takeover::{Handover, forget_self, take_over_and_start};
use crate::os::interrupts::Interrupts;
use crate::os::memory;
use crate::service::{Context, monitor};
use crate::supervise::{Follower, Mode, Supervisor};

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
