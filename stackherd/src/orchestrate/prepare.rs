//! What comes before a start: cleanup of leftovers and the build steps; and which of
//! the wanted services a start would start.

use std::collections::BTreeSet;

use crate::error::Result;
use crate::os::interrupts::Interrupts;
use crate::service::status::status;
use crate::service::{Context, build};
use crate::state::Lock;
use crate::stop;

/// What happens before a start.
#[derive(Debug, Clone, Copy)]
pub struct Prepare {
    /// Run the build steps of the services about to start.
    pub build: bool,
    /// Stop leftovers of earlier runs and remove stale records.
    pub cleanup: bool,
}

/// Cleanup of leftovers, then the builds of what is about to start; both before any
/// preflight check, because a build may produce the programs that preflight looks for.
pub fn prepare(ctx: &Context, wanted: &[String], prepare: Prepare, lock: &Lock, interrupts: Interrupts) -> Result<()> {
    if prepare.cleanup {
        stop::sweep_leftovers(ctx, lock, true)?;
    }
    if prepare.build {
        build::run(ctx, &plan(ctx, wanted), interrupts)?;
    }
    Ok(())
}

/// The services a start of `wanted` would start: the selection without what runs or
/// completed.
pub fn plan(ctx: &Context, wanted: &[String]) -> Vec<String> {
    ctx.config
        .graph()
        .with_dependencies(wanted)
        .into_iter()
        .filter(|name| !is_up(ctx, name))
        .collect()
}
fn is_up(ctx: &Context, name: &str) -> bool {
    status(ctx.registry.entry(name).as_ref(), false).is_up()
}

/// True when `wanted` and their dependencies all run (or, for jobs, completed).
pub fn all_up(ctx: &Context, wanted: &[String]) -> bool {
    ctx.config
        .graph()
        .with_dependencies(wanted)
        .iter()
        .all(|name| is_up(ctx, name))
}

/// The names of services a supervisor should watch after a start of `wanted`.
pub fn selection(ctx: &Context, wanted: &[String]) -> BTreeSet<String> {
    ctx.config.graph().with_dependencies(wanted).into_iter().collect()
}
