//! `start --tui`: the terminal UI over a background start, whose quitting stops it.

use super::ui::Quit;
use crate::error::{Error, Result, exit};
use crate::orchestrate::prepare;
use crate::orchestrate::prepare::Prepare;
use crate::os::interrupts::Interrupts;
use crate::service::Context;
use crate::stop;
use crate::stop::Scope;
use crate::ui::tui;

/// `start --tui`: starts as `start-bg` does (a detached monitor supervises), shows the
/// terminal UI, and when it quits (q, Ctrl+C, SIGTERM) stops what the start covers, as
/// Ctrl+C ends a foreground start; a Ctrl+C during that stop forces it.
pub fn run(ctx: &Context, names: &[String], switches: Prepare) -> Result<u8> {
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
