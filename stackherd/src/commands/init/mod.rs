//! `init [PATH] [--dry-run]`: wires a team's repository for stackherd and says what it
//! changed: the xtask (a minimal one when there is none, else the dependencies its
//! manifest lacks), the workspace's members and `[profile.xtask]`, the `cargo xtask`
//! alias, `.gitignore`, the make fragment and its `include`, and a starter
//! services.toml. Every edit only adds lines, and only what is missing: a second run
//! changes nothing. `--dry-run` prints the diff and writes nothing. A team's own `main`
//! is never rewritten: when it does not hand stackherd its commands yet, the lines to
//! add are printed.

mod diff;
mod edits;

use std::path::Path;

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
    if changes.is_empty() && by_hand.is_empty() {
        ui.done(format!("{} is wired already: nothing to change", root.display()));
        return Ok(exit::OK);
    }
    if dry_run {
        for change in &changes {
            for line in diff::diff(change.path, change.before.as_deref(), &change.after).lines() {
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
    for step in &by_hand {
        ui.warn(format!("by hand: {step}"));
    }
    let count = changes.len();
    if dry_run {
        ui.done(format!("dry run: {count} file(s) would change; nothing was written"));
    } else {
        // The alias was just added: it is how the repository runs it from now on.
        ui.done(format!(
            "{count} file(s) changed{}; next: `cargo xtask check` (or `make check`) builds the xtask, a few minutes the first time, and checks services.toml",
            match by_hand.len() {
                0 => String::new(),
                n => format!(", {n} step(s) left to you (above)"),
            }
        ));
    }
    Ok(exit::OK)
}

/// What the repository at `root` lacks, and the steps only its authors can take (their
/// own `main`, a file init does not know how to edit, a link it will not write through).
fn plan(root: &Path) -> Result<(Vec<Change>, Vec<String>)> {
    let dependency = dependency();
    let mut plan = Plan {
        root,
        changes: Vec::new(),
        by_hand: Vec::new(),
    };
    let own_xtask = root.join("xtask/Cargo.toml").is_file();
    plan_cargo(&mut plan, &dependency, own_xtask)?;
    plan_make(&mut plan)?;
    plan_services(&mut plan)?;
    let Plan {
        changes, mut by_hand, ..
    } = plan;
    if dependency.contains("path = ") && changes.iter().any(|c| c.after.contains(&dependency)) {
        by_hand.push(format!(
            "the stackherd dependency is a path on this machine ({dependency}): for your teammates, make it a git dependency (or a version, once published)"
        ));
    }
    if own_xtask
        && !read(&root.join("xtask/src/main.rs"))?
            .unwrap_or_default()
            .contains("stackherd::")
    {
        by_hand.push(format!(
            "xtask/src/main.rs does not hand stackherd its commands yet; add\n{}",
            edits::BY_HAND
        ));
    }
    Ok((changes, by_hand))
}

/// What `init` will change, and what it leaves to the user.
struct Plan<'a> {
    root: &'a Path,
    changes: Vec<Change>,
    by_hand: Vec<String>,
}

/// An edit of a file's text: the new text, `None` for no change, or the step the user
/// takes by hand.
type Edit<'e> = &'e dyn Fn(&str) -> std::result::Result<Option<String>, String>;

impl Plan<'_> {
    /// Plans `edit` of the file at `path` (below the root), described as `what`.
    fn change(&mut self, path: &'static str, what: &str, edit: Edit<'_>) -> Result<()> {
        let file = self.root.join(path);
        let before = read(&file)?;
        let after = match edit(before.as_deref().unwrap_or_default()) {
            Ok(Some(after)) => after,
            Ok(None) => return Ok(()),
            Err(step) => {
                self.by_hand.push(step);
                return Ok(());
            }
        };
        // Written only inside the repository and never through a link: a link there
        // leads to a file the team shares or keeps elsewhere.
        if file.symlink_metadata().is_ok_and(|m| m.file_type().is_symlink()) || !inside(self.root, &file) {
            self.by_hand.push(format!(
                "{path} is a link (or leads out of the repository): {what}, by hand"
            ));
            return Ok(());
        }
        self.changes.push(Change {
            path,
            before,
            after,
            what: what.to_string(),
        });
        Ok(())
    }
}

/// The workspace's manifest, the xtask package and the `cargo xtask` alias.
fn plan_cargo(plan: &mut Plan<'_>, dependency: &str, own_xtask: bool) -> Result<()> {
    let root = plan.root;
    let manifest = read(&root.join("Cargo.toml"))?.unwrap_or_default();
    plan.change("Cargo.toml", &edits::workspace_additions(&manifest), &edits::workspace)?;
    if own_xtask {
        plan.change("xtask/Cargo.toml", "the stackherd and clap dependencies", &|t| {
            Ok(edits::xtask_manifest(t, dependency))
        })?;
    } else {
        plan.change("xtask/Cargo.toml", "a minimal xtask", &|_| {
            Ok(Some(edits::manifest(dependency)))
        })?;
        plan.change(
            "xtask/src/main.rs",
            "its main, stackherd's commands flattened in",
            &|t| Ok(t.is_empty().then(|| edits::MAIN.to_string())),
        )?;
    }
    let config = if root.join(".cargo/config").is_file() && !root.join(".cargo/config.toml").exists() {
        ".cargo/config"
    } else {
        ".cargo/config.toml"
    };
    plan.change(config, "the `cargo xtask` alias", &edits::alias)?;
    if edits::alias_profile_differs(&read(&root.join(config))?.unwrap_or_default()) {
        plan.by_hand.push(format!(
            "your `xtask` alias in {config} builds in another profile than make does: add `--profile xtask` to it (`{}`), or cargo and make build and run two binaries",
            edits::ALIAS
        ));
    }
    Ok(())
}

/// `.gitignore`, the make fragment and the Makefile's include of it.
fn plan_make(plan: &mut Plan<'_>) -> Result<()> {
    plan.change(".gitignore", "the state directory and services.local.toml", &|t| {
        Ok(edits::gitignore(t))
    })?;
    // The fragment is the library's; one that differs may carry the team's changes.
    plan.change("stackherd.mk", "stackherd's make targets", &|t| {
        match t {
        "" => Ok(Some(edits::FRAGMENT.to_string())),
        same if same == edits::FRAGMENT => Ok(None),
        _ => Err("stackherd.mk differs from this version's fragment (stackherd/make/stackherd.mk) and was left as it is: compare them".to_string()),
    }
    })?;
    // The file make reads first is the one to extend.
    let makefile = ["GNUmakefile", "makefile", "Makefile"]
        .into_iter()
        .find(|name| plan.root.join(name).exists())
        .unwrap_or("Makefile");
    plan.change(makefile, "include stackherd.mk", &|t| {
        Ok(if t.is_empty() {
            // A new Makefile: a bare `make` shows the stack, never starts it.
            edits::makefile(".DEFAULT_GOAL := status\n")
        } else {
            edits::makefile(t)
        })
    })?;
    Ok(())
}

/// services.toml: imported from the stack's Procfile or compose file, else a starter.
fn plan_services(plan: &mut Plan<'_>) -> Result<()> {
    let root = plan.root;
    // An existing Procfile or compose file says what the stack is: imported, with what
    // did not map at the end of the file.
    let source = import::KNOWN
        .iter()
        .map(|name| root.join(name))
        .find(|path| path.is_file() && !root.join("services.toml").exists());
    let imported = source
        .as_deref()
        .and_then(|path| Some((path, import::format_of(path)?)))
        .map(|(path, format)| (path, import::convert(path, format)));
    match imported {
        Some((path, Ok((text, unmapped)))) => {
            let name = path
                .file_name()
                .map(|n| n.to_string_lossy().into_owned())
                .unwrap_or_default();
            let what = match unmapped.len() {
                0 => format!("imported from {name}"),
                n => format!("imported from {name}; {n} setting(s) did not map, listed at its end"),
            };
            plan.change("services.toml", &what, &|_| Ok(Some(text.clone())))?;
        }
        other => {
            if let Some((_, Err(err))) = other {
                plan.by_hand
                    .push(format!("{err}; services.toml is a commented starter instead"));
            }
            plan.change("services.toml", "a commented starter", &|t| {
                Ok(t.is_empty().then(|| edits::STARTER.to_string()))
            })?;
        }
    }
    Ok(())
}

/// Whether `file` (or, while it does not exist, the nearest directory above it that
/// does) is inside `root` once links are followed.
fn inside(root: &Path, file: &Path) -> bool {
    file.ancestors()
        .find_map(|p| p.canonicalize().ok())
        .is_some_and(|real| real.starts_with(root))
}

/// A file's text; `None` when there is none.
fn read(path: &Path) -> Result<Option<String>> {
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
