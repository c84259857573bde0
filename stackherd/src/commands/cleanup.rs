//! `cleanup [--dry-run]`: stop this project's leftovers and remove stale records.

use crate::error::Result;
use crate::lifecycle::{Context, stop};

pub fn run(ctx: &Context, dry_run: bool) -> Result<()> {
    stop::cleanup(ctx, dry_run)
}
