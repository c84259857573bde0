//! `restart [SERVICE...]`: stop those services and their dependents, then start them
//! again as `start-bg` does; the others keep running.

use crate::error::{Error, Interrupted, Result};
use crate::orchestrate::prepare::Prepare;
use crate::os::interrupts::Interrupts;
use crate::service::Context;
use crate::stop;
use crate::stop::Scope;

pub fn run(ctx: &Context, names: &[String], no_monitor: bool, prepare: Prepare) -> Result<u8> {
    let selected = ctx.select_active(names)?;
    // Dependents that neither run nor are active (their profile is off) stay down.
    let mut affected = ctx.config.graph().with_dependents(&selected);
    affected.retain(|s| selected.contains(s) || ctx.is_active(s) || ctx.registry.entry(s).is_some());
    // Ctrl+C, or a `stop` preempting us (SIGTERM), during the stop half: the stop
    // finishes (a second one cuts its grace period short) and nothing starts again.
    let interrupts = Interrupts::install();
    {
        let lock = ctx.registry.lock("restart")?;
        let options = stop::Options {
            interrupts: Some(interrupts),
            ..stop::Options::default()
        };
        stop::stop_services(ctx, &Scope::Services(affected.clone()), options, &lock)?;
    }
    if interrupts.any() {
        return Err(Error::Interrupted(Interrupted::Restart { stopped: affected }));
    }
    super::start_bg::run(ctx, &affected, no_monitor, prepare)
}
