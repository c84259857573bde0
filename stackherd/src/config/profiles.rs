//! `profiles` and `disabled`: which services start with the others, and why one does
//! not.

use std::collections::BTreeSet;

use super::Service;
use super::read::{self, Diagnostics, TableReader};

impl Service {
    /// Whether it starts with the others (none named) under the `active` profiles.
    pub fn is_active(&self, active: &BTreeSet<String>) -> bool {
        !self.disabled && (self.profiles.is_empty() || self.profiles.iter().any(|p| active.contains(p)))
    }

    /// Why it is not active: disabled, or which profiles would activate it.
    pub fn why_inactive(&self) -> String {
        if self.disabled {
            format!(
                "`{}` is disabled (`disabled = true`): name it on the command line to start it",
                self.name
            )
        } else {
            let flags: Vec<String> = self.profiles.iter().map(|p| format!("--profile {p}")).collect();
            format!(
                "`{}` belongs to profile {}: add {} (or set XTASK_PROFILES), or name it on the command line",
                self.name,
                self.profiles
                    .iter()
                    .map(|p| format!("`{p}`"))
                    .collect::<Vec<_>>()
                    .join(" or "),
                flags.join(" or ")
            )
        }
    }
}

/// `profiles = ["debug", "frontend"]`: names of letters, digits, `-` and `_`.
pub(super) fn parse_profiles(reader: &TableReader<'_, '_>, diags: &mut Diagnostics) -> Vec<String> {
    let Some(value) = reader.get("profiles") else {
        return Vec::new();
    };
    let what = reader.what("profiles");
    let mut profiles = Vec::new();
    for name in read::as_string_list(value, &what, diags).unwrap_or_default() {
        let valid = !name.get_ref().is_empty()
            && name
                .get_ref()
                .chars()
                .all(|c| c.is_ascii_alphanumeric() || matches!(c, '-' | '_'));
        if valid {
            profiles.push(name.into_inner());
        } else {
            diags.error_with_help(
                name.span(),
                format!("{what}: `{}` is not a profile name", name.get_ref()),
                "use letters, digits, `-` and `_`",
            );
        }
    }
    profiles
}
