//! Watching the files of the services that have `watch`: one inotify watcher for the
//! project behind a debouncer, its batches of changed paths matched to the services
//! whose `watch` covers them and whose ignore rules do not exclude them.
//!
//! Ignored, besides `watch_ignore`: what the `.gitignore` files from the project root
//! down to the service's `cwd` and at the top of each watched directory ignore, the
//! state directory (logs written there would otherwise restart a service that watches
//! `.`), `.git`, and editors' swap and backup files.

use std::collections::BTreeSet;
use std::path::{Component, Path, PathBuf};
use std::sync::mpsc;
use std::time::Duration;

use globset::{GlobBuilder, GlobSet, GlobSetBuilder};
use ignore::Match;
use ignore::gitignore::{Gitignore, GitignoreBuilder};
use notify_debouncer_mini::notify::{RecommendedWatcher, RecursiveMode};
use notify_debouncer_mini::{DebounceEventResult, Debouncer, new_debouncer};

use crate::config::{Service, is_glob};
use crate::os::interrupts;

/// Never a reason to rebuild: version control and editors' scratch files.
const ALWAYS_IGNORED: &[&str] = &[".git/", "*.swp", "*.swx", "*~", "4913", ".#*"];

/// The project's file watcher; dropping it stops watching.
pub struct Watcher {
    _debouncer: Debouncer<RecommendedWatcher>,
    changes: mpsc::Receiver<DebounceEventResult>,
    rules: Vec<Rule>,
    state_dir: PathBuf,
}

/// What one service watches.
struct Rule {
    service: String,
    /// Absolute plain paths: the path itself and everything under it.
    paths: Vec<PathBuf>,
    globs: GlobSet,
    /// Applied in order; the last one that has a say decides, as in git.
    ignores: Vec<Gitignore>,
}

impl Watcher {
    /// Watches the files of `services` (those with `watch`); `None` when none has any.
    /// The problems (a path that does not exist, an inotify limit) come back as
    /// warnings: a watch that cannot be set up must not stop the stack.
    pub fn new(
        services: &[&Service],
        root: &Path,
        state_dir: &Path,
        debounce: Duration,
    ) -> (Option<Watcher>, Vec<String>) {
        let mut warnings = Vec::new();
        let rules: Vec<Rule> = services
            .iter()
            .filter_map(|s| Rule::new(s, root, &mut warnings))
            .collect();
        if rules.is_empty() {
            return (None, warnings);
        }
        let (tx, changes) = mpsc::channel();
        let handler = move |result: DebounceEventResult| {
            if tx.send(result).is_ok() {
                interrupts::wake();
            }
        };
        let mut debouncer = match new_debouncer(debounce, handler) {
            Ok(debouncer) => debouncer,
            Err(err) => {
                warnings.push(format!("cannot watch files: {err}; `watch` is off"));
                return (None, warnings);
            }
        };
        let mut roots: BTreeSet<(PathBuf, bool)> = BTreeSet::new();
        for (service, watched) in services.iter().filter_map(|s| Some((s, s.watch.as_ref()?))) {
            for entry in &watched.paths {
                match watch_root(&service.cwd, entry) {
                    Some(root) => {
                        roots.insert(root);
                    }
                    None => warnings.push(format!(
                        "{}: watch path `{entry}` does not exist in {}",
                        service.name,
                        service.cwd.display()
                    )),
                }
            }
        }
        for (path, recursive) in roots {
            let mode = if recursive {
                RecursiveMode::Recursive
            } else {
                RecursiveMode::NonRecursive
            };
            if let Err(err) = debouncer.watcher().watch(&path, mode) {
                warnings.push(format!("cannot watch {}: {err}", path.display()));
            }
        }
        let watcher = Watcher {
            _debouncer: debouncer,
            changes,
            rules,
            state_dir: state_dir.to_path_buf(),
        };
        (Some(watcher), warnings)
    }

    /// The services with a relevant change since the last call; never blocks.
    pub fn changed(&self) -> (BTreeSet<String>, Vec<String>) {
        let mut services = BTreeSet::new();
        let mut errors = Vec::new();
        for batch in self.changes.try_iter() {
            let events = match batch {
                Ok(events) => events,
                Err(err) => {
                    errors.push(format!("file watch: {err}"));
                    continue;
                }
            };
            for event in events.iter().filter(|e| !e.path.starts_with(&self.state_dir)) {
                for rule in self.rules.iter().filter(|r| r.covers(&event.path)) {
                    services.insert(rule.service.clone());
                }
            }
        }
        (services, errors)
    }
}

impl Rule {
    fn new(service: &Service, root: &Path, warnings: &mut Vec<String>) -> Option<Rule> {
        let watch = service.watch.as_ref()?;
        let cwd = &service.cwd;
        let mut paths = Vec::new();
        let mut globs = GlobSetBuilder::new();
        for entry in &watch.paths {
            if is_glob(entry) {
                let pattern = format!("{}/{entry}", globset::escape(&cwd.to_string_lossy()));
                match GlobBuilder::new(&pattern).literal_separator(true).build() {
                    Ok(glob) => {
                        globs.add(glob);
                    }
                    Err(err) => warnings.push(format!("{}: watch glob `{entry}`: {err}", service.name)),
                }
            } else {
                paths.push(cwd.join(entry));
            }
        }
        let globs = globs.build().unwrap_or_else(|err| {
            warnings.push(format!("{}: watch globs: {err}", service.name));
            GlobSet::empty()
        });
        Some(Rule {
            service: service.name.clone(),
            paths,
            globs,
            ignores: ignores(service, root, &watch.ignore),
        })
    }

    fn covers(&self, path: &Path) -> bool {
        let wanted = self.paths.iter().any(|p| path.starts_with(p)) || self.globs.is_match(path);
        wanted && !self.ignored(path)
    }

    fn ignored(&self, path: &Path) -> bool {
        let is_dir = path.is_dir();
        let mut ignored = false;
        for ignore in self.ignores.iter().filter(|i| path.starts_with(i.path())) {
            match ignore.matched_path_or_any_parents(path, is_dir) {
                Match::Ignore(_) => ignored = true,
                Match::Whitelist(_) => ignored = false,
                Match::None => {}
            }
        }
        ignored
    }
}

/// The ignore rules of a service, outermost first: the built-in ones, the .gitignore
/// files from the project root down to its `cwd` and atop its watched directories,
/// then its `watch_ignore`.
fn ignores(service: &Service, root: &Path, own: &[String]) -> Vec<Gitignore> {
    let mut found = vec![from_lines(Path::new("/"), ALWAYS_IGNORED.iter().copied())];
    let mut dirs: Vec<PathBuf> = service
        .cwd
        .ancestors()
        .take_while(|d| d.starts_with(root))
        .map(Path::to_path_buf)
        .collect();
    dirs.reverse();
    if let Some(watch) = &service.watch {
        let tops = watch
            .paths
            .iter()
            .filter_map(|entry| watch_root(&service.cwd, entry))
            .filter(|(dir, recursive)| *recursive && dir != &service.cwd)
            .map(|(dir, _)| dir);
        dirs.extend(tops);
    }
    for dir in dirs {
        let file = dir.join(".gitignore");
        if file.is_file() {
            let (gitignore, _partial_errors) = Gitignore::new(&file);
            found.push(gitignore);
        }
    }
    found.push(from_lines(&service.cwd, own.iter().map(String::as_str)));
    found
}

fn from_lines<'a>(root: &Path, lines: impl Iterator<Item = &'a str>) -> Gitignore {
    let mut builder = GitignoreBuilder::new(root);
    for line in lines {
        // The config checked each line; one that fails here is left out.
        let _ = builder.add_line(None, line);
    }
    builder.build().unwrap_or_else(|_| Gitignore::empty())
}

/// What to hand inotify for one `watch` entry, and whether recursively: a directory
/// with everything under it; a file's directory (editors replace files by renaming,
/// which a watch on the file itself would lose); a glob's literal leading directories.
fn watch_root(cwd: &Path, entry: &str) -> Option<(PathBuf, bool)> {
    if is_glob(entry) {
        let literal: PathBuf = Path::new(entry)
            .components()
            .take_while(|c| !matches!(c, Component::Normal(part) if is_glob(&part.to_string_lossy())))
            .collect();
        let base = cwd.join(literal);
        return base.is_dir().then_some((base, true));
    }
    let path = cwd.join(entry);
    if path.is_dir() {
        return Some((path, true));
    }
    let parent = path.parent()?.to_path_buf();
    parent.is_dir().then_some((parent, false))
}
