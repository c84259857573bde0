//! `restart [SERVICE...]`: stop those services and their dependents, then start them
//! again as `start-bg` does; the others keep running.

use crate::error::Result;
use crate::lifecycle::Context;
use crate::lifecycle::prepare::Prepare;
use crate::lifecycle::stop::{self, Scope};

pub fn run(ctx: &Context, names: &[String], no_monitor: bool, prepare: Prepare) -> Result<u8> {
    let selected = ctx.select_active(names)?;
    // Dependents that neither run nor are active (their profile is off) stay down.
    let mut affected = ctx.config.graph().with_dependents(&selected);
    affected.retain(|s| selected.contains(s) || ctx.is_active(s) || ctx.registry.entry(s).is_some());
    {
        let lock = ctx.registry.lock("restart")?;
        stop::stop_services(ctx, &Scope::Services(affected.clone()), stop::Options::default(), &lock)?;
    }
    super::start_bg::run(ctx, &affected, no_monitor, prepare)
}
