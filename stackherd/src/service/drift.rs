//! Whether a running instance runs the config as it reads now: the hashes its record
//! kept at start against the service's fingerprint now. `status` marks the difference
//! and `start-bg` says it, since neither applies it: only a restart does.

use crate::config::Changes;
use crate::service::Context;
use crate::state::Record;
use crate::ui::hint;

/// What changed since `record`'s instance started; `None` when nothing did, when its
/// record predates the hashes, or when the config no longer has the service (nothing
/// to compare with: a broken config, a service removed).
pub fn changes(ctx: &Context, record: &Record) -> Option<Changes> {
    let service = ctx.config.service(&record.service)?;
    let changes = service.changes_since(record.config_hash.as_deref(), record.env_hash.as_deref());
    changes.any().then_some(changes)
}

/// The advice for a service whose config changed: what changed, and what applies it.
pub fn advice(service: &str, changes: Changes) -> String {
    let what = match (changes.config, changes.env) {
        (true, true) => "its command or ports and its env differ",
        (true, false) => "its command, working directory or ports differ",
        _ => "its env differs",
    };
    let restart = hint::command(&format!("restart {service}"));
    format!("config changed; `{restart}` applies it ({what} from the running instance's)")
}
