//! `stop [SERVICE...]`: the named services and their dependents, or the whole project,
//! in five phases.

use crate::error::Result;
use crate::service::{Context, preempt};
use crate::stop;
use crate::stop::{Options, Scope};

pub fn run(ctx: &Context, names: &[String], options: Options) -> Result<()> {
    ctx.ui.info(super::project_line(ctx));
    let lock = preempt::lock_over_a_start(ctx, "stop", options.force)?;
    let scope = if names.is_empty() {
        Scope::Project
    } else {
        // Without a config, no dependents are known: the named services alone.
        let selected = ctx.select(names)?;
        Scope::Services(ctx.config.graph().with_dependents(&selected))
    };
    stop::stop_services(ctx, &scope, options, &lock)
}
