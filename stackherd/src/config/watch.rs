//! `watch`, `watch_ignore` and `restart_with` of a service: which files, when they
//! change, rebuild and restart it. Globs and ignore lines are checked here, so that a
//! typo is a config error with its place rather than a watch that never fires.

use super::read::{self, Diagnostics, TableReader};

/// `watch` and `watch_ignore`, as written: relative to the service's `cwd`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Watch {
    /// Paths (a directory means everything under it) or globs.
    pub paths: Vec<String>,
    /// Lines as in .gitignore.
    pub ignore: Vec<String>,
}

/// Whether a `watch` entry is a glob rather than a plain path.
pub fn is_glob(entry: &str) -> bool {
    entry.contains(['*', '?', '[', '{'])
}

pub(super) fn parse_watch(reader: &TableReader<'_, '_>, diags: &mut Diagnostics) -> Option<Watch> {
    let Some(value) = reader.get("watch") else {
        if let Some(ignore) = reader.get("watch_ignore") {
            diags.error_with_help(
                ignore.span(),
                format!("{} needs `watch`", reader.what("watch_ignore")),
                "add the paths to watch: watch = [\"src\"]",
            );
        }
        return None;
    };
    let what = reader.what("watch");
    let mut paths = Vec::new();
    let entries = read::as_string_list(value, &what, diags)?;
    let listed = !entries.is_empty();
    for entry in entries {
        let text = entry.get_ref();
        if text.trim().is_empty() {
            diags.error_with_help(
                entry.span(),
                format!("{what}: an empty path"),
                "write a path such as \"src\"",
            );
        } else if text.starts_with('/') {
            diags.error_with_help(
                entry.span(),
                format!("{what}: `{text}` is an absolute path"),
                "watch paths are relative to the service's `cwd`, so that the project works in any checkout",
            );
        } else if let Some(err) = is_glob(text).then(|| globset::Glob::new(text).err()).flatten() {
            diags.error_with_help(
                entry.span(),
                format!("{what}: `{text}` is not a valid glob: {}", err.kind()),
                "write a path (\"src\") or a glob (\"src/**/*.rs\")",
            );
        } else {
            paths.push(entry.into_inner());
        }
    }
    let mut ignore = Vec::new();
    if let Some(value) = reader.get("watch_ignore") {
        let what = reader.what("watch_ignore");
        for entry in read::as_string_list(value, &what, diags).unwrap_or_default() {
            let mut builder = ignore::gitignore::GitignoreBuilder::new("/");
            match builder.add_line(None, entry.get_ref()) {
                Ok(_) => ignore.push(entry.into_inner()),
                Err(err) => diags.error_with_help(
                    entry.span(),
                    format!("{what}: `{}` is not a valid ignore line: {err}", entry.get_ref()),
                    "write lines as in .gitignore: \"target/\", \"*.log\"",
                ),
            }
        }
    }
    if !listed {
        diags.error_with_help(
            value.span(),
            format!("{what} names nothing to watch"),
            "list paths or globs, relative to the service's `cwd`: watch = [\"src\"]",
        );
        return None;
    }
    (!paths.is_empty()).then_some(Watch { paths, ignore })
}

/// `restart_with = true`: restarted when a dependency is restarted after a change.
pub(super) fn parse_restart_with(reader: &TableReader<'_, '_>, diags: &mut Diagnostics) -> bool {
    match reader.get("restart_with") {
        Some(value) => match value.get_ref() {
            toml::de::DeValue::Boolean(yes) => *yes,
            _ => {
                read::wrong_type(value, &reader.what("restart_with"), "true or false", diags);
                false
            }
        },
        None => false,
    }
}
