//! What the file watch counts, decided on notify's thread for each event: changes of
//! content only (writes, creations, removals, renames; never an open, a read or a
//! change of metadata), matched to the services whose `watch` covers them and whose
//! ignore rules do not exclude them; and which directories are worth a watch at all.
//!
//! Ignored, besides `watch_ignore`: what the `.gitignore` files from the project root
//! down to the service's `cwd` and at the top of each watched directory ignore (read
//! again when one of them is saved), everything under the state directory (by its real
//! path: logs written there would otherwise restart a service that watches `.`),
//! `.git`, Python's bytecode caches, and editors' swap, backup and autosave files.

use std::collections::BTreeSet;
use std::path::{Component, Path, PathBuf};

use globset::{GlobBuilder, GlobSet, GlobSetBuilder};
use ignore::Match;
use ignore::gitignore::{Gitignore, GitignoreBuilder};
use notify::Event;
use notify::event::{EventKind, ModifyKind, RenameMode};

use crate::config::{Service, is_glob};

/// Never a reason to rebuild: version control, bytecode caches, editors' scratch files
/// (vim's swap files and its write test `4913`, backups, Emacs' locks and autosaves).
const ALWAYS_IGNORED: &[&str] = &[".git/", "__pycache__/", "*.swp", "*.swx", "*~", "4913", ".#*", "#*#"];

/// A change of content that a service watches.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Change {
    pub service: String,
    pub path: PathBuf,
}

/// What notify's thread hands the supervisor.
pub(super) enum Notice {
    Changed(Change),
    /// A directory worth a watch was made, or moved in.
    DirMade(PathBuf),
    /// A path was removed or moved away: what was watched under it is forgotten.
    DirGone(PathBuf),
    /// The kernel's queue overflowed: changes were lost.
    Overflow,
    Error(String),
}

/// The rules of every watched service, and where the state directory is.
pub(super) struct Matcher {
    rules: Vec<Rule>,
    /// The state directory, as configured and by its real path.
    state_dirs: Vec<PathBuf>,
}

/// What one service watches.
struct Rule {
    service: String,
    /// Absolute plain paths (real paths): the path itself and everything under it.
    paths: Vec<PathBuf>,
    globs: GlobSet,
    /// The directories watched with everything under them for it.
    roots: Vec<PathBuf>,
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

impl Matcher {
    /// The rules of `services` (those with `watch`); problems come back as warnings.
    pub(super) fn new(services: &[&Service], root: &Path, state_dir: &Path, warnings: &mut Vec<String>) -> Matcher {
        let root = real(root);
        Matcher {
            rules: services.iter().filter_map(|s| Rule::new(s, &root, warnings)).collect(),
            state_dirs: vec![state_dir.to_path_buf(), real(state_dir)],
        }
    }

    pub(super) fn is_empty(&self) -> bool {
        self.rules.is_empty()
    }

    /// The services watched, and a directory each watches (for a change that cannot be
    /// told apart: events the kernel dropped).
    pub(super) fn services(&self) -> impl Iterator<Item = Change> + '_ {
        self.rules.iter().map(|r| Change {
            service: r.service.clone(),
            path: r.roots.first().or(r.paths.first()).cloned().unwrap_or_default(),
        })
    }

    /// Whether `dir` gets a watch of its own: it is under a directory some service
    /// watches whole, not under the state directory, and not ignored by every service
    /// that watches it. Ignored trees (`node_modules`, `target`) are never walked.
    pub(super) fn watchable(&self, dir: &Path) -> bool {
        !self.state_dirs.iter().any(|s| dir.starts_with(s))
            && self
                .rules
                .iter()
                .any(|r| r.roots.iter().any(|root| dir.starts_with(root)) && !r.ignored(dir))
    }

    /// What `event` means for the watch: changes for the services it concerns, and
    /// directories made (to be watched) or gone (to be forgotten).
    pub(super) fn notices(&mut self, event: &Event) -> Vec<Notice> {
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
            match event.kind {
                EventKind::Create(_) | EventKind::Modify(ModifyKind::Name(RenameMode::To))
                    if path.is_dir() && self.watchable(path) =>
                {
                    found.push(Notice::DirMade(path.clone()));
                }
                EventKind::Remove(_) | EventKind::Modify(ModifyKind::Name(RenameMode::From)) => {
                    found.push(Notice::DirGone(path.clone()));
                }
                _ => {}
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
        let roots = watch
            .paths
            .iter()
            .map(|entry| watch_root(&cwd, entry))
            .filter(|(_, whole)| *whole)
            .map(|(dir, _)| dir)
            .collect();
        let sources = IgnoreSources::of(service, &cwd, root, &watch.ignore);
        Some(Rule {
            service: service.name.clone(),
            paths,
            globs,
            roots,
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

/// The directories to watch for `services`: those watched with everything under them
/// (`whole`, none inside another), and those watched alone (`single`: the directory of
/// a watched file, and the parent of each whole one inside the project, so that its
/// removal and return are seen).
pub(super) fn watched_dirs(
    services: &[&Service],
    root: &Path,
    warnings: &mut Vec<String>,
) -> (BTreeSet<PathBuf>, BTreeSet<PathBuf>) {
    let root = real(root);
    let mut whole = BTreeSet::new();
    let mut single = BTreeSet::new();
    for service in services {
        let Some(watch) = &service.watch else { continue };
        let cwd = real(&service.cwd);
        for entry in &watch.paths {
            let (dir, recursive) = watch_root(&cwd, entry);
            if !dir.exists() {
                warnings.push(format!(
                    "{}: watch path `{entry}` does not exist in {}; it is watched once it is made",
                    service.name,
                    service.cwd.display()
                ));
            }
            if recursive {
                whole.insert(dir);
            } else {
                single.insert(dir);
            }
        }
    }
    // A directory under another one watched whole is watched with it.
    let covered = |dir: &Path, set: &BTreeSet<PathBuf>| set.iter().any(|r| dir != r && dir.starts_with(r));
    let whole: BTreeSet<PathBuf> = whole.iter().filter(|d| !covered(d, &whole)).cloned().collect();
    let parents = whole
        .iter()
        .filter_map(|d| d.parent())
        .filter(|p| p.starts_with(&root))
        .map(Path::to_path_buf);
    single.extend(parents);
    let single = single
        .into_iter()
        .filter(|d| !whole.contains(d) && !covered(d, &whole))
        .collect();
    (whole, single)
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
    fn the_state_directory_and_ignored_trees_are_neither_changes_nor_watched() {
        let mut matcher = Matcher {
            rules: vec![Rule {
                service: "api".into(),
                paths: vec![PathBuf::from("/p")],
                globs: GlobSet::empty(),
                roots: vec![PathBuf::from("/p")],
                ignores: vec![from_lines(Path::new("/p"), ["target/", "*.log"].into_iter())],
                sources: IgnoreSources {
                    dirs: Vec::new(),
                    cwd: PathBuf::from("/p"),
                    own: Vec::new(),
                },
            }],
            state_dirs: vec![PathBuf::from("/p/.xtask")],
        };
        let event = |kind, path: &str| Event::new(kind).add_path(PathBuf::from(path));
        let write = EventKind::Modify(ModifyKind::Data(DataChange::Any));
        assert!(matcher.notices(&event(write, "/p/.xtask/logs/api.log")).is_empty());
        assert!(matcher.notices(&event(write, "/p/server.log")).is_empty());
        assert!(matches!(
            matcher.notices(&event(write, "/p/src/main.rs")).as_slice(),
            [Notice::Changed(Change { service, .. })] if service == "api"
        ));
        let read = EventKind::Access(AccessKind::Open(AccessMode::Any));
        assert!(matcher.notices(&event(read, "/p/src/main.rs")).is_empty());
        let gone = matcher.notices(&event(EventKind::Remove(RemoveKind::Folder), "/p/src"));
        assert!(matches!(gone.first(), Some(Notice::DirGone(dir)) if dir == Path::new("/p/src")));
        assert!(!matcher.watchable(Path::new("/p/.xtask/logs")));
        assert!(!matcher.watchable(Path::new("/elsewhere")));
    }
}
