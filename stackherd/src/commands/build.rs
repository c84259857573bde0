//! `build [SERVICE...]`: the services' build steps alone, in dependency order.

use crate::error::Result;
use crate::os::interrupts::Interrupts;
use crate::service::{Context, build};

pub fn run(ctx: &Context, names: &[String]) -> Result<()> {
    let services = ctx.select_active(names)?;
    build::run(ctx, &services, Interrupts::install())
}
