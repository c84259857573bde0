//! `init [PATH] [--dry-run]`: wires a team's repository for stackherd and says what it
//! changed: the xtask (a minimal one when there is none, else the dependencies its
//! manifest lacks), the workspace's members and `[profile.xtask]`, the `cargo xtask`
//! alias, `.gitignore`, the make fragment and its `include`, and a starter
//! services.toml. Every edit only adds lines, and only what is missing: a second run
//! changes nothing. `--dry-run` prints the diff and writes nothing. A team's own `main`
//! is never rewritten: when it does not hand stackherd its commands yet, the lines to
//! add are printed.

mod edits;

use std::path::{Path, PathBuf};

use super::import;
use crate::error::{Error, Result, exit};
use crate::state::repo_files;
use crate::ui::{self, Ui};

/// One file `init` creates or extends.
struct Change {
    /// Relative to the repository's root.
    path: &'static str,
    before: Option<String>,
    after: String,
    what: String,
}

pub fn run(ui: &Ui, root: &Path, dry_run: bool) -> Result<u8> {
    let root = root
        .canonicalize()
        .map_err(|err| Error::io(format!("cannot open {}", root.display()), err))?;
    if !root.join("Cargo.toml").is_file() {
        return Err(Error::NotAWorkspace { root });
    }
    let (changes, by_hand) = plan(&root)?;
    if changes.is_empty() && !by_hand {
        ui.done(format!("{} is wired already: nothing to change", root.display()));
        return Ok(exit::OK);
    }
    if dry_run {
        for change in &changes {
            for line in edits::diff(change.path, change.before.as_deref(), &change.after).lines() {
                ui::log_line(line);
            }
        }
    } else {
        ui.info(format!("wiring {}", root.display()));
        for change in &changes {
            repo_files::write(&root.join(change.path), &change.after)
                .map_err(|err| Error::io(format!("cannot write {}", root.join(change.path).display()), err))?;
            let verb = if change.before.is_some() { "changed" } else { "created" };
            ui.ok(format!("{verb} {}: {}", change.path, change.what));
        }
    }
    if by_hand {
        ui.warn(format!(
            "one step is yours: xtask/src/main.rs does not hand stackherd its commands yet; add\n{}",
            edits::BY_HAND
        ));
    }
    let count = changes.len();
    if dry_run {
        ui.done(format!("dry run: {count} file(s) would change; nothing was written"));
    } else {
        // The alias was just added: it is how the repository runs it from now on.
        ui.done(format!(
            "{count} file(s) changed; next: `cargo xtask check` (or `make check`) builds the xtask, a few minutes the first time, and checks services.toml"
        ));
    }
    Ok(exit::OK)
}

/// What the repository at `root` lacks, and whether its own xtask `main` still needs
/// the lines only its authors can add.
fn plan(root: &Path) -> Result<(Vec<Change>, bool)> {
    let dependency = dependency();
    let mut changes = Vec::new();
    let mut change = |path: &'static str, what: &str, edit: &dyn Fn(&str) -> Option<String>| -> Result<()> {
        let before = read(&root.join(path))?;
        if let Some(after) = edit(before.as_deref().unwrap_or_default()) {
            changes.push(Change {
                path,
                before,
                after,
                what: what.to_string(),
            });
        }
        Ok(())
    };
    change(
        "Cargo.toml",
        "`xtask` in the workspace, [profile.xtask]",
        &edits::workspace,
    )?;
    let own_xtask = root.join("xtask/Cargo.toml").is_file();
    if own_xtask {
        change("xtask/Cargo.toml", "the stackherd and clap dependencies", &|t| {
            edits::xtask_manifest(t, &dependency)
        })?;
    } else {
        change("xtask/Cargo.toml", "a minimal xtask", &|_| {
            Some(edits::manifest(&dependency))
        })?;
        change(
            "xtask/src/main.rs",
            "its main, stackherd's commands flattened in",
            &|t| t.is_empty().then(|| edits::MAIN.to_string()),
        )?;
    }
    let config = if root.join(".cargo/config").is_file() && !root.join(".cargo/config.toml").exists() {
        ".cargo/config"
    } else {
        ".cargo/config.toml"
    };
    change(config, "the `cargo xtask` alias", &edits::alias)?;
    change(
        ".gitignore",
        "the state directory and services.local.toml",
        &edits::gitignore,
    )?;
    change("stackherd.mk", "stackherd's make targets", &|t| {
        (t != edits::FRAGMENT).then(|| edits::FRAGMENT.to_string())
    })?;
    change("Makefile", "include stackherd.mk", &|t| {
        if t.is_empty() {
            // A new Makefile: a bare `make` shows the stack, never starts it.
            edits::makefile(".DEFAULT_GOAL := status\n")
        } else {
            edits::makefile(t)
        }
    })?;
    // An existing Procfile or compose file says what the stack is: imported, with what
    // did not map at the end of the file.
    let source = import::KNOWN
        .iter()
        .map(|name| root.join(name))
        .find(|path| path.is_file() && !root.join("services.toml").exists());
    match source
        .as_deref()
        .and_then(|path| Some((path, import::format_of(path)?)))
    {
        Some((path, format)) => {
            let (text, unmapped) = import::convert(path, format)?;
            let name = path
                .file_name()
                .map(|n| n.to_string_lossy().into_owned())
                .unwrap_or_default();
            let what = match unmapped.len() {
                0 => format!("imported from {name}"),
                n => format!("imported from {name}; {n} setting(s) did not map, listed at its end"),
            };
            change("services.toml", &what, &|_| Some(text.clone()))?;
        }
        None => change("services.toml", "a commented starter", &|t| {
            t.is_empty().then(|| edits::STARTER.to_string())
        })?,
    }
    let by_hand = own_xtask
        && !read(&root.join("xtask/src/main.rs"))?
            .unwrap_or_default()
            .contains("stackherd::");
    Ok((changes, by_hand))
}

/// A file's text; `None` when there is none.
fn read(path: &PathBuf) -> Result<Option<String>> {
    match std::fs::read_to_string(path) {
        Ok(text) => Ok(Some(text)),
        Err(err) if err.kind() == std::io::ErrorKind::NotFound => Ok(None),
        Err(err) => Err(Error::io(format!("cannot read {}", path.display()), err)),
    }
}

/// The dependency line: this library's own checkout by path while it is one (run from
/// this repository, or from a team's that depends on it by path), else its version.
fn dependency() -> String {
    let here = Path::new(env!("CARGO_MANIFEST_DIR"));
    let packaged = here
        .components()
        .any(|c| matches!(c.as_os_str().to_str(), Some("registry" | "checkouts" | "package")));
    if !packaged && here.join("src/lib.rs").is_file() {
        let path = toml::Value::String(here.display().to_string());
        format!("stackherd = {{ path = {path} }}")
    } else {
        format!("stackherd = \"{}\"", env!("CARGO_PKG_VERSION"))
    }
}
