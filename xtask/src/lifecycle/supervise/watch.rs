//! Watching the files of the services that have `watch`: one inotify watcher for the
//! project, whose events are filtered on notify's thread down to changes of content
//! (writes, creations, removals, renames; never an open, a read or a change of
//! metadata) and matched to the services whose `watch` covers them and whose ignore
//! rules do not exclude them. The quiet period that turns a burst of changes into one
//! build is the supervisor's, per service.
//!
//! Ignored, besides `watch_ignore`: what the `.gitignore` files from the project root
//! down to the service's `cwd` and at the top of each watched directory ignore,
//! everything under the state directory (by its real path: logs written there would
//! otherwise restart a service that watches `.`), `.git`, Python's bytecode caches,
//! and editors' swap and backup files. Symbolic links are not followed, so a link to an
//! ancestor cannot bring the state directory (or the whole disk) into the watch.
//!
//! A watched directory that is removed (or moved away) and made again is watched again:
//! its parent is watched too, where that parent is inside the project.

use std::collections::BTreeSet;
use std::path::{Component, Path, PathBuf};
use std::sync::mpsc;

use globset::{GlobBuilder, GlobSet, GlobSetBuilder};
use ignore::Match;
use ignore::gitignore::{Gitignore, GitignoreBuilder};
use notify::event::{EventKind, ModifyKind, RenameMode};
use notify::{Config, Event, RecommendedWatcher, RecursiveMode, Watcher as _};

use crate::config::{Service, is_glob};
use crate::os::wake;

/// Never a reason to rebuild: version control, bytecode caches, editors' scratch files.
const ALWAYS_IGNORED: &[&str] = &[".git/", "__pycache__/", "*.swp", "*.swx", "*~", "4913", ".#*"];

/// The project's file watcher; dropping it stops watching.
pub struct Watcher {
    inner: RecommendedWatcher,
    notices: mpsc::Receiver<Notice>,
    /// What was reported already, so that a lasting problem is told once.
    told: BTreeSet<String>,
}

/// A change of content that a service watches.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Change {
    pub service: String,
    pub path: PathBuf,
}

/// What notify's thread hands the supervisor.
enum Notice {
    Changed(Change),
    /// A watched directory was removed or moved away: its watch is gone.
    RootGone(PathBuf),
    /// A watched directory exists (again).
    RootBack(PathBuf),
    /// The kernel's queue overflowed: changes were lost.
    Overflow,
    Error(String),
}

/// Decides on notify's thread, for each event, whom it concerns.
struct Matcher {
    rules: Vec<Rule>,
    /// The state directory, as configured and by its real path.
    state_dirs: Vec<PathBuf>,
    roots: BTreeSet<PathBuf>,
}

/// What one service watches.
struct Rule {
    service: String,
    /// Absolute plain paths (real paths): the path itself and everything under it.
    paths: Vec<PathBuf>,
    globs: GlobSet,
    /// Applied in order; the last one that has a say decides, as in git.
    ignores: Vec<Gitignore>,
    /// Where its ignore rules come from, to read them again when a `.gitignore` among
    /// them changes.
    sources: IgnoreSources,
}

/// The places of a service's ignore rules: the directories whose `.gitignore` counts
/// (from the project root down to its `cwd`, and atop its watched directories), and
/// its `watch_ignore` lines, relative to its `cwd`.
struct IgnoreSources {
    dirs: Vec<PathBuf>,
    cwd: PathBuf,
    own: Vec<String>,
}

impl Watcher {
    /// Watches the files of `services` (those with `watch`); `None` when none has any.
    /// The problems (a path that does not exist, an inotify limit) come back as
    /// warnings: a watch that cannot be set up must not stop the stack.
    pub fn new(services: &[&Service], root: &Path, state_dir: &Path) -> (Option<Watcher>, Vec<String>) {
        let mut warnings = Vec::new();
        let root = real(root);
        let rules: Vec<Rule> = services
            .iter()
            .filter_map(|s| Rule::new(s, &root, &mut warnings))
            .collect();
        if rules.is_empty() {
            return (None, warnings);
        }
        let (recursive, single) = watched_dirs(services, &root, &mut warnings);
        let matcher = Matcher {
            rules,
            state_dirs: vec![state_dir.to_path_buf(), real(state_dir)],
            roots: recursive.clone(),
        };
        let (tx, notices) = mpsc::channel();
        let mut matcher = matcher;
        let handler = move |result: notify::Result<Event>| {
            let found = match result {
                Ok(event) => matcher.notices(&event),
                Err(err) => vec![Notice::Error(err.to_string())],
            };
            if !found.is_empty() {
                for notice in found {
                    let _ = tx.send(notice);
                }
                wake::wake();
            }
        };
        let config = Config::default().with_follow_symlinks(false);
        let mut inner = match RecommendedWatcher::new(handler, config) {
            Ok(inner) => inner,
            Err(err) => {
                warnings.push(format!("cannot watch files: {err}; `watch` is off"));
                return (None, warnings);
            }
        };
        // The parents first: a root made between the two is then seen coming.
        for dir in &single {
            if let Err(err) = inner.watch(dir, RecursiveMode::NonRecursive) {
                warnings.push(format!("cannot watch {}: {err}", dir.display()));
            }
        }
        for dir in recursive.iter().filter(|d| d.is_dir()) {
            if let Err(err) = inner.watch(dir, RecursiveMode::Recursive) {
                warnings.push(format!("cannot watch {}: {err}", dir.display()));
            }
        }
        let watcher = Watcher {
            inner,
            notices,
            told: BTreeSet::new(),
        };
        (Some(watcher), warnings)
    }

    /// The changes that came in since the last call; never blocks. Watches again a
    /// directory that came back; what goes wrong comes back as warnings, each once.
    pub fn changes(&mut self) -> (Vec<Change>, Vec<String>) {
        let mut changes = Vec::new();
        let mut warnings = Vec::new();
        while let Ok(notice) = self.notices.try_recv() {
            match notice {
                Notice::Changed(change) => changes.push(change),
                Notice::RootGone(dir) => {
                    // Its watch may follow the directory to where it was moved.
                    let _ = self.inner.unwatch(&dir);
                }
                Notice::RootBack(dir) => {
                    if dir.is_dir()
                        && let Err(err) = self.inner.watch(&dir, RecursiveMode::Recursive)
                    {
                        warnings.extend(self.once(format!("cannot watch {}: {err}", dir.display())));
                    }
                }
                Notice::Overflow => warnings.extend(self.once(
                    "file watch: the kernel's event queue overflowed, so an edit may have been missed; save it again, or raise fs.inotify.max_queued_events".to_string(),
                )),
                Notice::Error(err) => warnings.extend(self.once(format!("file watch: {err}"))),
            }
        }
        (changes, warnings)
    }

    fn once(&mut self, warning: String) -> Option<String> {
        self.told.insert(warning.clone()).then_some(warning)
    }
}

impl Matcher {
    fn notices(&mut self, event: &Event) -> Vec<Notice> {
        if event.need_rescan() {
            return vec![Notice::Overflow];
        }
        if !is_content_change(&event.kind) {
            return Vec::new();
        }
        // A `.gitignore` edited while the stack runs counts from now on (a service that
        // writes into what it watches is ignored without a restart of the supervisor).
        for rule in &mut self.rules {
            if event.paths.iter().any(|p| rule.sources.reads(p)) {
                rule.ignores = rule.sources.load();
            }
        }
        let mut found = Vec::new();
        for path in &event.paths {
            if self.state_dirs.iter().any(|dir| path.starts_with(dir)) {
                continue;
            }
            if self.roots.contains(path) {
                match event.kind {
                    EventKind::Create(_) | EventKind::Modify(ModifyKind::Name(RenameMode::To)) => {
                        found.push(Notice::RootBack(path.clone()));
                    }
                    EventKind::Remove(_) | EventKind::Modify(ModifyKind::Name(RenameMode::From)) => {
                        found.push(Notice::RootGone(path.clone()));
                    }
                    _ => {}
                }
            }
            for rule in self.rules.iter().filter(|r| r.covers(path)) {
                found.push(Notice::Changed(Change {
                    service: rule.service.clone(),
                    path: path.clone(),
                }));
            }
        }
        found
    }
}

/// A change of what a file or directory holds: it was written, made, removed or
/// renamed. Opening, reading and closing a file (a build reading its sources, a
/// program reading its own script) and changes of metadata (`touch`, `chmod`) are not.
fn is_content_change(kind: &EventKind) -> bool {
    match kind {
        EventKind::Create(_) | EventKind::Remove(_) => true,
        EventKind::Modify(modify) => !matches!(modify, ModifyKind::Metadata(_)),
        EventKind::Access(_) | EventKind::Any | EventKind::Other => false,
    }
}

impl Rule {
    fn new(service: &Service, root: &Path, warnings: &mut Vec<String>) -> Option<Rule> {
        let watch = service.watch.as_ref()?;
        let cwd = real(&service.cwd);
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
                paths.push(real(&cwd.join(entry)));
            }
        }
        let globs = globs.build().unwrap_or_else(|err| {
            warnings.push(format!("{}: watch globs: {err}", service.name));
            GlobSet::empty()
        });
        let sources = IgnoreSources::of(service, &cwd, root, &watch.ignore);
        Some(Rule {
            service: service.name.clone(),
            paths,
            globs,
            ignores: sources.load(),
            sources,
        })
    }

    fn covers(&self, path: &Path) -> bool {
        let wanted = self.paths.iter().any(|p| path.starts_with(p)) || self.globs.is_match(path);
        wanted && !self.ignored(path)
    }

    fn ignored(&self, path: &Path) -> bool {
        // A removed path is no longer a directory: its name decides.
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

/// The directories to hand inotify: with everything under them (`recursive`), or alone
/// (`single`: the directory of a watched file, and the parent of each recursive one
/// inside the project, so that its removal and return are seen). None is inside another.
fn watched_dirs(
    services: &[&Service],
    root: &Path,
    warnings: &mut Vec<String>,
) -> (BTreeSet<PathBuf>, BTreeSet<PathBuf>) {
    let mut recursive = BTreeSet::new();
    let mut single = BTreeSet::new();
    for service in services {
        let Some(watch) = &service.watch else { continue };
        let cwd = real(&service.cwd);
        for entry in &watch.paths {
            let (dir, whole) = watch_root(&cwd, entry);
            if !dir.exists() {
                warnings.push(format!(
                    "{}: watch path `{entry}` does not exist in {}; it is watched once it is made",
                    service.name,
                    service.cwd.display()
                ));
            }
            if whole {
                recursive.insert(dir);
            } else {
                single.insert(dir);
            }
        }
    }
    // A directory under another one watched whole is watched with it.
    let covered = |dir: &Path, set: &BTreeSet<PathBuf>| set.iter().any(|r| dir != r && dir.starts_with(r));
    let recursive: BTreeSet<PathBuf> = recursive.iter().filter(|d| !covered(d, &recursive)).cloned().collect();
    let parents = recursive
        .iter()
        .filter_map(|d| d.parent())
        .filter(|p| p.starts_with(root))
        .map(Path::to_path_buf);
    single.extend(parents);
    let single = single
        .into_iter()
        .filter(|d| !recursive.contains(d) && !covered(d, &recursive))
        .collect();
    (recursive, single)
}

impl IgnoreSources {
    fn of(service: &Service, cwd: &Path, root: &Path, own: &[String]) -> IgnoreSources {
        let mut dirs: Vec<PathBuf> = cwd
            .ancestors()
            .take_while(|d| d.starts_with(root))
            .map(Path::to_path_buf)
            .collect();
        dirs.reverse();
        if let Some(watch) = &service.watch {
            let tops = watch
                .paths
                .iter()
                .map(|entry| watch_root(cwd, entry))
                .filter(|(dir, whole)| *whole && dir != cwd)
                .map(|(dir, _)| dir);
            dirs.extend(tops);
        }
        IgnoreSources {
            dirs,
            cwd: cwd.to_path_buf(),
            own: own.to_vec(),
        }
    }

    /// The ignore rules, outermost first: the built-in ones, the .gitignore files as
    /// they are now, then `watch_ignore`.
    fn load(&self) -> Vec<Gitignore> {
        let mut found = vec![from_lines(Path::new("/"), ALWAYS_IGNORED.iter().copied())];
        for dir in &self.dirs {
            let file = dir.join(".gitignore");
            if file.is_file() {
                let (gitignore, _partial_errors) = Gitignore::new(&file);
                found.push(gitignore);
            }
        }
        found.push(from_lines(&self.cwd, self.own.iter().map(String::as_str)));
        found
    }

    /// Whether `path` is one of the `.gitignore` files these rules read.
    fn reads(&self, path: &Path) -> bool {
        path.file_name() == Some(std::ffi::OsStr::new(".gitignore"))
            && path.parent().is_some_and(|dir| self.dirs.iter().any(|d| d == dir))
    }
}

fn from_lines<'a>(root: &Path, lines: impl Iterator<Item = &'a str>) -> Gitignore {
    let mut builder = GitignoreBuilder::new(root);
    for line in lines {
        // The config checked each line; one that fails here is left out.
        let _ = builder.add_line(None, line);
    }
    builder.build().unwrap_or_else(|_| Gitignore::empty())
}

/// The directory to watch for one `watch` entry, and whether with everything under it:
/// a directory (or a path not made yet) whole; a file's directory alone (editors
/// replace files by renaming, which a watch on the file itself would lose); a glob's
/// literal leading directories whole.
fn watch_root(cwd: &Path, entry: &str) -> (PathBuf, bool) {
    if is_glob(entry) {
        let literal: PathBuf = Path::new(entry)
            .components()
            .take_while(|c| !matches!(c, Component::Normal(part) if is_glob(&part.to_string_lossy())))
            .collect();
        return (real(&cwd.join(literal)), true);
    }
    let path = real(&cwd.join(entry));
    if path.is_file() {
        let parent = path.parent().map_or_else(|| cwd.to_path_buf(), Path::to_path_buf);
        return (parent, false);
    }
    (path, true)
}

/// `path` with its symbolic links resolved, as far as it exists: the paths of inotify's
/// events are built from the watched directories' real paths.
fn real(path: &Path) -> PathBuf {
    if let Ok(real) = path.canonicalize() {
        return real;
    }
    match (path.parent(), path.file_name()) {
        (Some(parent), Some(name)) if parent != path => real(parent).join(name),
        _ => path.to_path_buf(),
    }
}

#[cfg(test)]
mod tests {
    use notify::event::{AccessKind, AccessMode, CreateKind, DataChange, MetadataKind, RemoveKind};

    use super::*;

    #[test]
    fn only_changes_of_content_count() {
        let rows = [
            (EventKind::Create(CreateKind::File), true),
            (EventKind::Remove(RemoveKind::Folder), true),
            (EventKind::Modify(ModifyKind::Data(DataChange::Any)), true),
            (EventKind::Modify(ModifyKind::Name(RenameMode::To)), true),
            (EventKind::Modify(ModifyKind::Name(RenameMode::From)), true),
            (EventKind::Modify(ModifyKind::Metadata(MetadataKind::Any)), false),
            (EventKind::Access(AccessKind::Open(AccessMode::Any)), false),
            (EventKind::Access(AccessKind::Close(AccessMode::Write)), false),
            (EventKind::Access(AccessKind::Close(AccessMode::Read)), false),
            (EventKind::Other, false),
        ];
        for (kind, counts) in rows {
            assert_eq!(is_content_change(&kind), counts, "{kind:?}");
        }
    }

    #[test]
    fn the_state_directory_never_counts_and_a_returning_root_is_watched_again() {
        let mut matcher = Matcher {
            rules: vec![Rule {
                service: "api".into(),
                paths: vec![PathBuf::from("/p")],
                globs: GlobSet::empty(),
                ignores: Vec::new(),
                sources: IgnoreSources {
                    dirs: Vec::new(),
                    cwd: PathBuf::from("/p"),
                    own: Vec::new(),
                },
            }],
            state_dirs: vec![PathBuf::from("/p/.xtask")],
            roots: BTreeSet::from([PathBuf::from("/p/src")]),
        };
        let event = |kind, path: &str| Event::new(kind).add_path(PathBuf::from(path));
        let write = EventKind::Modify(ModifyKind::Data(DataChange::Any));
        assert!(matcher.notices(&event(write, "/p/.xtask/logs/api.log")).is_empty());
        assert!(matches!(
            matcher.notices(&event(write, "/p/src/main.rs")).as_slice(),
            [Notice::Changed(Change { service, .. })] if service == "api"
        ));
        let made = matcher.notices(&event(EventKind::Create(CreateKind::Folder), "/p/src"));
        assert!(matches!(made.first(), Some(Notice::RootBack(dir)) if dir == Path::new("/p/src")));
        let gone = matcher.notices(&event(EventKind::Remove(RemoveKind::Folder), "/p/src"));
        assert!(matches!(gone.first(), Some(Notice::RootGone(_))));
        let read = EventKind::Access(AccessKind::Open(AccessMode::Any));
        assert!(matcher.notices(&event(read, "/p/src/main.rs")).is_empty());
    }
}
