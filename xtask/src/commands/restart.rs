//! `restart [SERVICE...]`: stop those services and their dependents, then start them
//! again as `start-bg` does; the others keep running.

use crate::error::Result;
use crate::lifecycle::Context;
use crate::lifecycle::prepare::Prepare;
use crate::lifecycle::stop::{self, Scope};

pub fn run(ctx: &Context, names: &[String], no_monitor: bool, prepare: Prepare) -> Result<u8> {
    let selected = ctx.select(names)?;
    let affected = ctx.config.graph().with_dependents(&selected);
    {
        let lock = ctx.registry.lock("restart")?;
        stop::stop_services(ctx, &Scope::Services(affected.clone()), stop::Options::default(), &lock)?;
    }
    super::start_bg::run(ctx, &affected, no_monitor, prepare)
}
