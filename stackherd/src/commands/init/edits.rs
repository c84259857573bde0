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
pub const BY_HAND: &str = "    #[command(flatten)] stack: stackherd::Options,   // in your top-level parser struct
    #[command(flatten)] Stack(stackherd::Command),   // in your subcommand enum
    Command::Stack(command) => stackherd::run(cli.stack, command),   // in main's match
  `stackherd::run` returns a `std::process::ExitCode`: `fn main() -> ExitCode`, with your
  other arms ending in `ExitCode::SUCCESS` (the crate's documentation has the whole main)";

/// The clap dependency a new or wired xtask needs.
pub const CLAP: &str = r#"clap = { version = "4", features = ["derive"] }"#;

/// The manifest of a new xtask crate, with `dependency` (the stackherd line).
pub fn manifest(dependency: &str) -> String {
    format!(
        "[package]\nname = \"xtask\"\nversion = \"0.1.0\"\nedition = \"2021\"\npublish = false\n\n[dependencies]\n{CLAP}\n{dependency}\n"
    )
}

/// What `workspace` adds to `text`, for the line `init` prints.
pub fn workspace_additions(text: &str) -> String {
    let parsed: toml::Table = toml::from_str(text).unwrap_or_default();
    let member = parsed
        .get("workspace")
        .and_then(|w| w.get("members"))
        .and_then(|m| m.as_array())
        .is_some_and(|m| m.iter().filter_map(|v| v.as_str()).any(covers_xtask));
    let profile = parsed.get("profile").and_then(|p| p.get("xtask")).is_some();
    match (member, profile) {
        (false, false) => "`xtask` among the workspace's members, [profile.xtask]",
        (false, true) => "`xtask` among the workspace's members",
        _ => "[profile.xtask]",
    }
    .to_string()
}

/// Whether the team's own `xtask` alias builds in another profile than the fragment's:
/// cargo and make would then build and run two binaries.
pub fn alias_profile_differs(text: &str) -> bool {
    let parsed: toml::Table = toml::from_str(text).unwrap_or_default();
    let alias = parsed.get("alias").and_then(|a| a.get("xtask"));
    let words: Vec<String> = match alias {
        Some(toml::Value::String(s)) => s.split_whitespace().map(str::to_string).collect(),
        Some(toml::Value::Array(a)) => a.iter().filter_map(|v| v.as_str().map(str::to_string)).collect(),
        _ => return false,
    };
    !words
        .windows(2)
        .any(|w| w.first().is_some_and(|a| a == "--profile") && w.get(1).is_some_and(|b| b == "xtask"))
        && !words.iter().any(|w| w == "--profile=xtask")
}

/// The workspace manifest with `[profile.xtask]` and `xtask` among its members; `Err`
/// says what to do by hand when the file is not written as these edits expect.
pub fn workspace(text: &str) -> Result<Option<String>, String> {
    let mut out = text.to_string();
    let parsed: toml::Table = toml::from_str(text)
        .map_err(|_| "Cargo.toml does not parse as TOML: fix it, then run init again".to_string())?;
    let workspace = parsed.get("workspace").and_then(|w| w.as_table());
    let members = workspace.and_then(|w| w.get("members")).and_then(|m| m.as_array());
    let has_xtask = members.is_some_and(|m| m.iter().filter_map(|v| v.as_str()).any(covers_xtask));
    if !has_xtask {
        let by_hand = || "add \"xtask\" to the workspace's `members` in Cargo.toml".to_string();
        out = match (workspace.is_some(), members.is_some()) {
            (true, true) => in_section(&out, "workspace", r"(?m)^[ \t]*members[ \t]*=[ \t]*\[", "\"xtask\", ")
                .ok_or_else(by_hand)?,
            (true, false) => insert_after(&out, r"(?m)^\[workspace\][ \t]*(#[^\n]*)?\n", "members = [\"xtask\"]\n")
                .ok_or_else(by_hand)?,
            (false, _) => format!("{}\n[workspace]\nmembers = [\"xtask\"]\n", with_newline(&out)),
        };
    }
    let has_profile = parsed.get("profile").and_then(|p| p.get("xtask")).is_some();
    if !has_profile {
        out = format!("{}\n{PROFILE}", with_newline(&out));
    }
    Ok((out != text).then_some(out))
}

/// `text` with `what` inserted after the first match of `pattern` inside the `[name]`
/// table (not in another table that has the same key).
fn in_section(text: &str, name: &str, pattern: &str, what: &str) -> Option<String> {
    let header = regex::Regex::new(&format!(r"(?m)^\[{}\][ \t]*(#[^\n]*)?$", regex::escape(name))).ok()?;
    let start = header.find(text)?.end();
    let rest = text.get(start..)?;
    let end = regex::Regex::new(r"(?m)^[ \t]*\[")
        .ok()?
        .find(rest)
        .map_or(rest.len(), |m| m.start());
    let found = regex::Regex::new(pattern).ok()?.find(rest.get(..end)?)?;
    let at = start.checked_add(found.end())?;
    let (head, tail) = text.split_at(at);
    Some(format!("{head}{what}{tail}"))
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
/// alias is theirs: never clobbered); `Err` says what to do by hand.
pub fn alias(text: &str) -> Result<Option<String>, String> {
    let parsed: toml::Table = toml::from_str(text)
        .map_err(|_| "the cargo config does not parse as TOML: add the alias by hand".to_string())?;
    let aliases = parsed.get("alias").and_then(|a| a.as_table());
    if aliases.is_some_and(|a| a.contains_key("xtask")) {
        return Ok(None);
    }
    match aliases {
        Some(_) => insert_after(text, r"(?m)^\[alias\][ \t]*(#[^\n]*)?\n", &format!("{ALIAS}\n"))
            .map(Some)
            .ok_or_else(|| format!("add `{ALIAS}` to the `alias` table of the cargo config")),
        None => Ok(Some(format!(
            "{}{}[alias]\n{ALIAS}\n",
            with_newline(text),
            if text.is_empty() { "" } else { "\n" }
        ))),
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

/// The fragment's targets, which a team's Makefile may have too.
const TARGETS: &str = "start|start-bg|stop|stop-force|restart|status|logs|ui|cleanup|check|build|run|completions";

/// Whether the Makefile has a target of the fragment's (`build:`, `run:`), which the
/// include would then override: the fragment's targets get a prefix instead.
pub fn clashes(text: &str) -> bool {
    regex::Regex::new(&format!(
        r"(?m)^(({TARGETS})[ \t]+)*({TARGETS})([ \t]+[^:=\n]*)?[ \t]*::?([^=]|$)"
    ))
    .is_ok_and(|re| re.is_match(text))
}

/// A Makefile that includes the fragment, its targets prefixed with `stack-` when the
/// Makefile has targets of the same names.
pub fn makefile(text: &str) -> Option<String> {
    if text
        .lines()
        .any(|l| l.trim() == INCLUDE || l.trim() == format!("-{INCLUDE}"))
    {
        return None;
    }
    let gap = if text.is_empty() { "" } else { "\n" };
    if clashes(text) && !text.contains("STACKHERD_PREFIX") {
        return Some(format!(
            "{}{gap}# stackherd's targets, as stack-start-bg, stack-stop, ...: this Makefile has some of\n# their plain names.\nSTACKHERD_PREFIX = stack-\n{INCLUDE}\n",
            with_newline(text)
        ));
    }
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_workspace_gains_the_member_and_the_profile_once() {
        let team = "[workspace]\nresolver = \"2\"\nmembers = [\"app\"]\n\n[profile.dev]\ndebug = 1\n";
        let wired = workspace(team).unwrap().unwrap();
        assert!(
            wired.starts_with(
                "[workspace]\nresolver = \"2\"\nmembers = [\"xtask\", \"app\"]\n\n[profile.dev]\ndebug = 1\n"
            ),
            "{wired}"
        );
        assert!(wired.contains("[profile.xtask]\ninherits = \"dev\""), "{wired}");
        let parsed: toml::Table = toml::from_str(&wired).unwrap();
        assert_eq!(parsed["profile"]["dev"]["debug"].as_integer(), Some(1));
        assert_eq!(workspace(&wired), Ok(None), "a second init changes nothing");
        assert_eq!(
            workspace("[workspace]\nmembers = [\"crates/*\", \"*\"]\n[profile.xtask]\n"),
            Ok(None)
        );
        let bare = workspace("[workspace]\n\n[package]\nname = \"a\"\n").unwrap().unwrap();
        assert!(
            bare.starts_with("[workspace]\nmembers = [\"xtask\"]\n\n[package]"),
            "{bare}"
        );
        // Another table's `members` is left alone; an inline workspace is the team's to edit.
        let other =
            "[workspace.metadata.release]\nmembers = [\"x\"]\n\n[workspace]\nmembers = [\"app\"]\n[profile.xtask]\n";
        assert_eq!(
            workspace(other).unwrap().unwrap(),
            "[workspace.metadata.release]\nmembers = [\"x\"]\n\n[workspace]\nmembers = [\"xtask\", \"app\"]\n[profile.xtask]\n"
        );
        assert!(workspace("workspace = { members = [\"app\"] }\n[profile.xtask]\n").is_err());
        assert!(workspace("[workspace\n").is_err());
        let single = workspace("[package]\nname = \"a\"\n").unwrap().unwrap();
        let parsed: toml::Table = toml::from_str(&single).unwrap();
        assert_eq!(parsed["workspace"]["members"][0].as_str(), Some("xtask"));
    }

    #[test]
    fn an_alias_of_the_team_is_never_clobbered() {
        assert_eq!(alias("[alias]\nxtask = \"run -p tools --\"\n"), Ok(None));
        let merged = alias("[build]\njobs = 2\n\n[alias]\nb = \"build\"\n").unwrap().unwrap();
        assert_eq!(
            merged,
            format!("[build]\njobs = 2\n\n[alias]\n{ALIAS}\nb = \"build\"\n")
        );
        assert_eq!(alias("").unwrap().unwrap(), format!("[alias]\n{ALIAS}\n"));
        assert_eq!(alias(&alias("").unwrap().unwrap()), Ok(None));
        assert!(alias("alias = { b = \"build\" }\n").is_err());
        assert!(alias_profile_differs("[alias]\nxtask = \"run --package xtask --\"\n"));
        assert!(!alias_profile_differs(&format!("[alias]\n{ALIAS}\n")));
        assert!(!alias_profile_differs("[alias]\nb = \"build\"\n"));
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
        let clashing = makefile("build:\n\tcargo build\nVAR := x\n").unwrap();
        assert!(
            clashing.ends_with("STACKHERD_PREFIX = stack-\ninclude stackherd.mk\n"),
            "{clashing}"
        );
        assert!(!clashes("BUILD := 1\nbuilder:\n\ttrue\nrun_all:\n"));
        assert!(clashes("check test: lint\n"));
        let dep = "stackherd = \"0.1\"";
        let m = xtask_manifest("[package]\nname = \"xtask\"\n\n[dependencies]\nanyhow = \"1\"\n", dep).unwrap();
        assert!(
            m.ends_with(&format!("[dependencies]\n{dep}\n{CLAP}\nanyhow = \"1\"\n")),
            "{m}"
        );
        assert_eq!(xtask_manifest(&m, dep), None);
    }
}
