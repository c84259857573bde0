//! `cleanup [--dry-run]`: stop this project's leftovers and remove stale records.

use crate::error::Result;
use crate::service::Context;
use crate::stop;

pub fn run(ctx: &Context, dry_run: bool) -> Result<()> {
    stop::cleanup(ctx, dry_run)
}
