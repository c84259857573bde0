//! The detached monitor of `start-bg` (the hidden `__monitor` subcommand): takes over
//! from an earlier monitor, starts the services, reports on the pipe to `start-bg`,
//! then supervises until nothing is left or it is signalled.

use crate::error::{Result, exit};
use crate::orchestrate::prepare::Prepare;
use crate::orchestrate::takeover::{Handover, forget_self, left_to_supervise, take_over_and_start};
use crate::os::interrupts::Interrupts;
use crate::os::memory;
use crate::os::spawn;
use crate::service::{Context, monitor};
use crate::state::fault;
use crate::supervise::{Mode, Supervisor};
use crate::ui;

/// The hidden subcommand that runs the monitor.
pub const SUBCOMMAND: &str = "__monitor";
/// Starts the monitor's last line on the pipe; the exit code of the start follows, and
/// `STAYS` when the monitor goes on supervising (after a failed start too).
pub const DONE: &str = "\u{1e}xtask-start-exit=";
pub const STAYS: &str = " supervising";

/// The monitor process; its exit code is the start's when the start failed.
pub fn run(ctx: &Context, wanted: &[String], lock_fd: Option<i32>, prepare: Prepare) -> Result<u8> {
    memory::one_malloc_arena();
    let interrupts = Interrupts::install();
    monitor::become_subreaper();
    // Made before the start, so that its file watch sees the edits made during it and
    // is on when `start-bg` returns.
    let scope = ctx.config.services.iter().map(|s| s.name.clone()).collect();
    let mut supervisor = Supervisor::new(ctx, Mode::Monitor, scope, interrupts);
    let started = take_over_and_start(ctx, wanted, interrupts, Handover::Monitor { lock_fd, prepare });
    supervisor.take_in_the_start();
    let code = match &started {
        Ok(()) => exit::OK,
        Err(err) => {
            ui::error(err);
            err.code()
        }
    };
    // The start failed and was rolled back; what ran before it (the services of the
    // monitor it took over from) is still supervised, here.
    let stays = started.is_ok() || left_to_supervise(ctx);
    let staying = if stays { STAYS } else { "" };
    ctx.ui.protocol_line(&format!("{DONE}{code}{staying}"));
    redirect_output(ctx);
    if !stays {
        forget_self(ctx);
        return Ok(code);
    }
    let after = if started.is_err() { " after a failed start" } else { "" };
    ctx.ui.result(format!(
        "{} monitor: supervising (pid {}){after}",
        ui::timestamp(),
        std::process::id()
    ));
    fault::pause(&ctx.registry, fault::BEFORE_SUPERVISING);
    let result = supervisor.run();
    forget_self(ctx);
    result
}

/// After start-up the pipe to `start-bg` is closed: from now on the monitor writes its
/// events to `monitor.log` in the state directory.
fn redirect_output(ctx: &Context) {
    let Ok(log) = ctx.registry.open_monitor_log() else {
        return;
    };
    spawn::redirect_stdio(&log);
}
