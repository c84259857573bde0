//! What `init` writes into a team's repository, as pure functions of the files' text:
//! each returns the new text, or `None` when the file is wired already, so that a
//! second `init` changes nothing. Every edit adds lines; none rewrites the team's.

/// The profile the alias and the make fragment build in, word for word this
/// repository's (a tidy test holds them equal): the team's own profiles stay untouched.
pub const PROFILE: &str = r#"# stackherd's commands (`cargo xtask`, make) build in a profile of their own, so that
# your `cargo build` and `cargo test` keep their dev profile. Its monitor stays up all
# day: optimised for size it holds about half the memory.
[profile.xtask]
inherits = "dev"
opt-level = "s"
debug = false

# Build scripts and proc macros run once per build: optimising them costs more than it
# saves. (A `package."*"` override would beat this one, hence the profile itself.)
[profile.xtask.build-override]
opt-level = 0

[profile.xtask.package.stackherd]
debug = "line-tables-only"

[profile.xtask.package.xtask]
debug = "line-tables-only"
"#;

/// The alias line, in `[alias]` of `.cargo/config.toml`.
pub const ALIAS: &str = r#"xtask = "run --quiet --profile xtask --package xtask --""#;

/// What `.gitignore` gains: the state directory and the developer's own overrides.
pub const IGNORED: [&str; 2] = [".xtask/", "services.local.toml"];

/// The make fragment, as the library ships it.
pub const FRAGMENT: &str = include_str!("../../../make/stackherd.mk");
pub const INCLUDE: &str = "include stackherd.mk";

/// A services.toml to start from.
pub const STARTER: &str = r#"# The services of this repository's development stack: `cargo xtask start-bg` starts
# them in dependency order and returns once each is healthy; `cargo xtask stop` stops
# them all. Each service is a [services.NAME] table; `cargo xtask check` checks them.
#
# [services.db]
# command = "postgres -D data/pg -p 5432"
# port = 5432                        # healthy once it accepts connections here
#
# [services.api]
# command = "cargo run -p api"
# port = 8080
# depends_on = ["db"]
# env = { DATABASE_URL = "postgres://localhost:5432/app" }
#
# [services.worker]
# command = "python3 worker.py"
# tty = true                         # line-buffered output, as in a terminal
# depends_on = ["api"]
"#;

/// The xtask's `main` with stackherd's commands flattened in, for a workspace that has
/// no xtask yet.
pub const MAIN: &str = r#"//! This repository's `cargo xtask`: stackherd's commands (start-bg, stop, status,
//! logs, ...) beside your own.

use std::process::ExitCode;

use clap::{Parser, Subcommand};

#[derive(Parser)]
#[command(name = "xtask")]
struct Cli {
    #[command(flatten)]
    stack: stackherd::Options,
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    // Your own commands go here, each with its arm in `main`.
    #[command(flatten)]
    Stack(stackherd::Command),
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    match cli.command {
        Command::Stack(command) => stackherd::run(cli.stack, command),
    }
}
"#;

/// The lines of `main` that a team's own xtask needs, for the note `init` prints.
pub const BY_HAND: &str = "    #[command(flatten)] stack: stackherd::Options,        // in your top-level parser\n    #[command(flatten)] Stack(stackherd::Command),        // in your subcommand enum\n    Command::Stack(command) => stackherd::run(cli.stack, command),   // in main's match";

/// The clap dependency a new or wired xtask needs.
pub const CLAP: &str = r#"clap = { version = "4", features = ["derive"] }"#;

/// The manifest of a new xtask crate, with `dependency` (the stackherd line).
pub fn manifest(dependency: &str) -> String {
    format!(
        "[package]\nname = \"xtask\"\nversion = \"0.1.0\"\nedition = \"2021\"\npublish = false\n\n[dependencies]\n{CLAP}\n{dependency}\n"
    )
}

/// The workspace manifest with `[profile.xtask]` and `xtask` among its members.
pub fn workspace(text: &str) -> Option<String> {
    let mut out = text.to_string();
    let parsed: Option<toml::Table> = toml::from_str(text).ok();
    let workspace = parsed
        .as_ref()
        .and_then(|t| t.get("workspace"))
        .and_then(|w| w.as_table());
    let members = workspace.and_then(|w| w.get("members")).and_then(|m| m.as_array());
    let has_xtask = members.is_some_and(|m| m.iter().filter_map(|v| v.as_str()).any(covers_xtask));
    if !has_xtask {
        out = match (workspace.is_some(), members.is_some()) {
            (true, true) => insert_after(&out, r"(?m)^\s*members\s*=\s*\[", "\"xtask\", ")?,
            (true, false) => insert_after(&out, r"(?m)^\[workspace\][^\n]*\n", "members = [\"xtask\"]\n")?,
            (false, _) => format!("{}\n[workspace]\nmembers = [\"xtask\"]\n", with_newline(&out)),
        };
    }
    let has_profile = parsed
        .as_ref()
        .and_then(|t| t.get("profile"))
        .and_then(|p| p.get("xtask"))
        .is_some();
    if !has_profile {
        out = format!("{}\n{PROFILE}", with_newline(&out));
    }
    (out != text).then_some(out)
}

/// A workspace member pattern that takes in the `xtask` directory.
fn covers_xtask(member: &str) -> bool {
    let member = member.trim_start_matches("./").trim_end_matches('/');
    member == "xtask" || globset::Glob::new(member).is_ok_and(|g| g.compile_matcher().is_match("xtask"))
}

/// `text` with `what` inserted after the first match of `pattern`.
fn insert_after(text: &str, pattern: &str, what: &str) -> Option<String> {
    let found = regex::Regex::new(pattern).ok()?.find(text)?;
    let (head, tail) = text.split_at(found.end());
    Some(format!("{head}{what}{tail}"))
}

fn with_newline(text: &str) -> String {
    if text.is_empty() || text.ends_with('\n') {
        text.to_string()
    } else {
        format!("{text}\n")
    }
}

/// `.cargo/config.toml` with the `xtask` alias; `None` when it has one (the team's own
/// alias is theirs: never clobbered).
pub fn alias(text: &str) -> Option<String> {
    let parsed: Option<toml::Table> = toml::from_str(text).ok();
    let aliases = parsed.as_ref().and_then(|t| t.get("alias")).and_then(|a| a.as_table());
    if aliases.is_some_and(|a| a.contains_key("xtask")) {
        return None;
    }
    match aliases {
        Some(_) => insert_after(text, r"(?m)^\[alias\][^\n]*\n", &format!("{ALIAS}\n")),
        None => Some(format!(
            "{}{}[alias]\n{ALIAS}\n",
            with_newline(text),
            if text.is_empty() { "" } else { "\n" }
        )),
    }
}

/// `.gitignore` with the lines it lacks.
pub fn gitignore(text: &str) -> Option<String> {
    let missing: Vec<&str> = IGNORED
        .iter()
        .copied()
        .filter(|line| {
            !text
                .lines()
                .any(|l| l.trim() == *line || l.trim() == line.trim_end_matches('/'))
        })
        .collect();
    if missing.is_empty() {
        return None;
    }
    Some(format!("{}{}\n", with_newline(text), missing.join("\n")))
}

/// A Makefile that includes the fragment.
pub fn makefile(text: &str) -> Option<String> {
    if text
        .lines()
        .any(|l| l.trim() == INCLUDE || l.trim() == format!("-{INCLUDE}"))
    {
        return None;
    }
    let gap = if text.is_empty() { "" } else { "\n" };
    Some(format!(
        "{}{gap}# stackherd's targets: start, start-bg, stop, status, logs, ...\n{INCLUDE}\n",
        with_newline(text)
    ))
}

/// An xtask manifest with the dependencies it lacks (stackherd's, clap's).
pub fn xtask_manifest(text: &str, dependency: &str) -> Option<String> {
    let parsed: Option<toml::Table> = toml::from_str(text).ok();
    let deps = parsed
        .as_ref()
        .and_then(|t| t.get("dependencies"))
        .and_then(|d| d.as_table());
    let mut lines = Vec::new();
    if !deps.is_some_and(|d| d.contains_key("stackherd")) {
        lines.push(dependency);
    }
    if !deps.is_some_and(|d| d.contains_key("clap")) {
        lines.push(CLAP);
    }
    if lines.is_empty() {
        return None;
    }
    let added = format!("{}\n", lines.join("\n"));
    match deps {
        Some(_) => insert_after(text, r"(?m)^\[dependencies\][^\n]*\n", &added),
        None => Some(format!("{}\n[dependencies]\n{added}", with_newline(text))),
    }
}

/// A unified diff of `path` from `before` (none: a new file) to `after`, with two
/// lines of context: the lines in common are a longest common subsequence (the files
/// are small, a quadratic table is nothing).
pub fn diff(path: &str, before: Option<&str>, after: &str) -> String {
    let old: Vec<&str> = before.map(|b| b.lines().collect()).unwrap_or_default();
    let new: Vec<&str> = after.lines().collect();
    let ops = line_ops(&old, &new);
    let from = if before.is_some() {
        format!("a/{path}")
    } else {
        "/dev/null".to_string()
    };
    let mut out = format!("--- {from}\n+++ b/{path}\n");
    // Hunks: runs of changes with the context around them, merged when they touch.
    let changed: Vec<usize> = ops
        .iter()
        .enumerate()
        .filter(|(_, op)| op.0 != ' ')
        .map(|(i, _)| i)
        .collect();
    let mut k = 0;
    while let Some(&first) = changed.get(k) {
        let start = first.saturating_sub(CONTEXT);
        let mut end = first;
        while let Some(&next) = changed.get(k) {
            if next > end.saturating_add(2 * CONTEXT).saturating_add(1) && next != first {
                break;
            }
            end = next;
            k = k.saturating_add(1);
        }
        let end = end.saturating_add(CONTEXT).saturating_add(1).min(ops.len());
        let hunk = ops.get(start..end).unwrap_or_default();
        let (old_at, new_at) = ops
            .get(..start)
            .unwrap_or_default()
            .iter()
            .fold((0usize, 0usize), |(o, n), op| {
                (
                    o.saturating_add(usize::from(op.0 != '+')),
                    n.saturating_add(usize::from(op.0 != '-')),
                )
            });
        let old_len = hunk.iter().filter(|op| op.0 != '+').count();
        let new_len = hunk.iter().filter(|op| op.0 != '-').count();
        let at = |from: usize, len: usize| if len == 0 { from } else { from.saturating_add(1) };
        out.push_str(&format!(
            "@@ -{},{old_len} +{},{new_len} @@\n",
            at(old_at, old_len),
            at(new_at, new_len)
        ));
        for (sign, line) in hunk {
            out.push_str(&format!("{sign}{line}\n"));
        }
    }
    out
}

/// Lines of context around a change.
const CONTEXT: usize = 2;

/// The edit from `old` to `new`, line by line: ' ' kept, '-' removed, '+' added.
fn line_ops<'a>(old: &[&'a str], new: &[&'a str]) -> Vec<(char, &'a str)> {
    // common[i][j]: the longest common subsequence of old[i..] and new[j..].
    let width = new.len().saturating_add(1);
    let mut common = vec![0usize; old.len().saturating_add(1).saturating_mul(width)];
    let cell = |i: usize, j: usize| i.saturating_mul(width).saturating_add(j);
    for i in (0..old.len()).rev() {
        for j in (0..new.len()).rev() {
            let value = if old.get(i) == new.get(j) {
                common
                    .get(cell(i.saturating_add(1), j.saturating_add(1)))
                    .copied()
                    .unwrap_or(0)
                    .saturating_add(1)
            } else {
                let down = common.get(cell(i.saturating_add(1), j)).copied().unwrap_or(0);
                let right = common.get(cell(i, j.saturating_add(1))).copied().unwrap_or(0);
                down.max(right)
            };
            if let Some(c) = common.get_mut(cell(i, j)) {
                *c = value;
            }
        }
    }
    let (mut i, mut j, mut ops) = (0, 0, Vec::new());
    while i < old.len() || j < new.len() {
        match (old.get(i), new.get(j)) {
            (Some(a), Some(b)) if a == b => {
                ops.push((' ', *a));
                (i, j) = (i.saturating_add(1), j.saturating_add(1));
            }
            (Some(a), Some(_))
                if common.get(cell(i.saturating_add(1), j)) >= common.get(cell(i, j.saturating_add(1))) =>
            {
                ops.push(('-', *a));
                i = i.saturating_add(1);
            }
            (Some(a), None) => {
                ops.push(('-', *a));
                i = i.saturating_add(1);
            }
            (_, Some(b)) => {
                ops.push(('+', *b));
                j = j.saturating_add(1);
            }
            (None, None) => break,
        }
    }
    ops
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_workspace_gains_the_member_and_the_profile_once() {
        let team = "[workspace]\nresolver = \"2\"\nmembers = [\"app\"]\n\n[profile.dev]\ndebug = 1\n";
        let wired = workspace(team).unwrap();
        assert!(
            wired.starts_with(
                "[workspace]\nresolver = \"2\"\nmembers = [\"xtask\", \"app\"]\n\n[profile.dev]\ndebug = 1\n"
            ),
            "{wired}"
        );
        assert!(wired.contains("[profile.xtask]\ninherits = \"dev\""), "{wired}");
        let parsed: toml::Table = toml::from_str(&wired).unwrap();
        assert_eq!(parsed["profile"]["dev"]["debug"].as_integer(), Some(1));
        assert_eq!(workspace(&wired), None, "a second init changes nothing");
        assert_eq!(
            workspace("[workspace]\nmembers = [\"crates/*\", \"*\"]\n[profile.xtask]\n").as_deref(),
            None
        );
        let bare = workspace("[workspace]\n\n[package]\nname = \"a\"\n").unwrap();
        assert!(
            bare.starts_with("[workspace]\nmembers = [\"xtask\"]\n\n[package]"),
            "{bare}"
        );
        let single = workspace("[package]\nname = \"a\"\n").unwrap();
        let parsed: toml::Table = toml::from_str(&single).unwrap();
        assert_eq!(parsed["workspace"]["members"][0].as_str(), Some("xtask"));
    }

    #[test]
    fn an_alias_of_the_team_is_never_clobbered() {
        assert_eq!(alias("[alias]\nxtask = \"run -p tools --\"\n"), None);
        let merged = alias("[build]\njobs = 2\n\n[alias]\nb = \"build\"\n").unwrap();
        assert_eq!(
            merged,
            format!("[build]\njobs = 2\n\n[alias]\n{ALIAS}\nb = \"build\"\n")
        );
        assert_eq!(alias("").unwrap(), format!("[alias]\n{ALIAS}\n"));
        assert_eq!(alias(&alias("").unwrap()), None);
    }

    #[test]
    fn ignore_lines_makefile_and_manifest_are_added_once() {
        assert_eq!(
            gitignore("/target\n.xtask\n").unwrap(),
            "/target\n.xtask\nservices.local.toml\n"
        );
        assert_eq!(gitignore(".xtask/\nservices.local.toml\n"), None);
        let make = makefile("help:\n\t@echo hi").unwrap();
        assert!(make.starts_with("help:\n\t@echo hi\n\n") && make.ends_with("include stackherd.mk\n"));
        assert_eq!(makefile(&make), None);
        let dep = "stackherd = \"0.1\"";
        let m = xtask_manifest("[package]\nname = \"xtask\"\n\n[dependencies]\nanyhow = \"1\"\n", dep).unwrap();
        assert!(
            m.ends_with(&format!("[dependencies]\n{dep}\n{CLAP}\nanyhow = \"1\"\n")),
            "{m}"
        );
        assert_eq!(xtask_manifest(&m, dep), None);
    }

    #[test]
    fn the_diff_shows_added_lines_with_context() {
        let d = diff("Makefile", Some("a\nb\nc\n"), "a\nb\nc\n\ninclude x\n");
        assert_eq!(
            d,
            "--- a/Makefile\n+++ b/Makefile\n@@ -2,2 +2,4 @@\n b\n c\n+\n+include x\n"
        );
        let new = diff("s.toml", None, "x\ny\n");
        assert_eq!(new, "--- /dev/null\n+++ b/s.toml\n@@ -0,0 +1,2 @@\n+x\n+y\n");
        // Two edits far apart: two hunks, the lines between them untouched.
        let old = "[workspace]\nmembers = [\"app\"]\n1\n2\n3\n4\n5\n6\n[profile.dev]\n";
        let new = "[workspace]\nmembers = [\"xtask\", \"app\"]\n1\n2\n3\n4\n5\n6\n[profile.dev]\n\n[profile.xtask]\n";
        let d = diff("Cargo.toml", Some(old), new);
        assert_eq!(
            d,
            "--- a/Cargo.toml\n+++ b/Cargo.toml\n@@ -1,4 +1,4 @@\n [workspace]\n-members = [\"app\"]\n+members = [\"xtask\", \"app\"]\n 1\n 2\n@@ -8,2 +8,4 @@\n 6\n [profile.dev]\n+\n+[profile.xtask]\n"
        );
    }
}
