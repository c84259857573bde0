//! Watching the files of the services that have `watch`: one inotify instance for the
//! project, a watch for each directory worth one (`watch_rules` decides which, and
//! what counts as a change). Directories are watched one by one rather than whole
//! trees at once, so that an ignored tree (`node_modules`, `target/`) or the state
//! directory costs no watch and no event: a build writing thousands of files there, or
//! a service logging, wakes nothing. A directory made later is watched when it appears,
//! one removed or moved away is forgotten, and one watched whole that is removed and
//! made again is watched again (its parent, inside the project, is watched for it).
//! Symbolic links are never followed. The quiet period that turns a burst of changes
//! into one build is the supervisor's, per service.

use std::collections::BTreeSet;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex, PoisonError, mpsc};

use notify::{Config, Event, RecommendedWatcher, RecursiveMode, Watcher as _};
use walkdir::WalkDir;

pub use super::watch_rules::Change;
use super::watch_rules::{Matcher, Notice, watched_dirs};
use crate::config::Service;
use crate::os::wake;

/// The project's file watcher; dropping it stops watching.
pub struct Watcher {
    inner: RecommendedWatcher,
    notices: mpsc::Receiver<Notice>,
    matcher: Arc<Mutex<Matcher>>,
    /// The directories watched, each alone.
    dirs: BTreeSet<PathBuf>,
    /// What was reported already, so that a lasting problem is told once.
    told: BTreeSet<String>,
}

impl Watcher {
    /// Watches the files of `services` (those with `watch`); `None` when none has any.
    /// The problems (a path that does not exist, an inotify limit) come back as
    /// warnings: a watch that cannot be set up must not stop the stack.
    pub fn new(services: &[&Service], root: &Path, state_dir: &Path) -> (Option<Watcher>, Vec<String>) {
        let mut warnings = Vec::new();
        let matcher = Matcher::new(services, root, state_dir, &mut warnings);
        if matcher.is_empty() {
            return (None, warnings);
        }
        let (whole, single) = watched_dirs(services, root, &mut warnings);
        let matcher = Arc::new(Mutex::new(matcher));
        let (tx, notices) = mpsc::channel();
        let deciding = Arc::clone(&matcher);
        let handler = move |result: notify::Result<Event>| {
            let found = match result {
                Ok(event) => lock(&deciding).notices(&event),
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
        let inner = match RecommendedWatcher::new(handler, config) {
            Ok(inner) => inner,
            Err(err) => {
                warnings.push(format!("cannot watch files: {err}; `watch` is off"));
                return (None, warnings);
            }
        };
        let mut watcher = Watcher {
            inner,
            notices,
            matcher,
            dirs: BTreeSet::new(),
            told: BTreeSet::new(),
        };
        // The parents first: a directory made between the two is then seen coming.
        for dir in &single {
            if let Err(err) = watcher.inner.watch(dir, RecursiveMode::NonRecursive) {
                warnings.push(format!("cannot watch {}: {err}", dir.display()));
            }
        }
        for dir in &whole {
            warnings.extend(watcher.watch_tree(dir));
        }
        (Some(watcher), warnings)
    }

    /// The changes that came in since the last call; never blocks. Watches the
    /// directories that were made and forgets those that went; what goes wrong comes
    /// back as warnings, each once.
    pub fn changes(&mut self) -> (Vec<Change>, Vec<String>) {
        let mut changes = Vec::new();
        let mut warnings = Vec::new();
        while let Ok(notice) = self.notices.try_recv() {
            match notice {
                Notice::Changed(change) => changes.push(change),
                Notice::DirMade(dir) => warnings.extend(self.watch_tree(&dir)),
                Notice::DirGone(path) => self.forget(&path),
                Notice::Overflow => {
                    warnings.extend(self.once(
                        "file watch: the kernel's event queue overflowed; every watched service is rebuilt, as an edit may be among what was lost".to_string(),
                    ));
                    changes.extend(lock(&self.matcher).services());
                }
                Notice::Error(err) => warnings.extend(self.once(format!("file watch: {err}"))),
            }
        }
        (changes, warnings)
    }

    /// Watches `top` and the directories under it that are worth it (made before
    /// their parent's watch could see them). The rules are asked first and let go of:
    /// notify's thread, which a watch waits for, may be waiting for them.
    fn watch_tree(&mut self, top: &Path) -> Vec<String> {
        let found: Vec<PathBuf> = {
            let matcher = lock(&self.matcher);
            WalkDir::new(top)
                .follow_links(false)
                .into_iter()
                .filter_entry(|e| e.file_type().is_dir() && matcher.watchable(e.path()))
                .filter_map(Result::ok)
                .map(walkdir::DirEntry::into_path)
                .filter(|dir| !self.dirs.contains(dir))
                .collect()
        };
        let mut warnings = Vec::new();
        for dir in found {
            match self.inner.watch(&dir, RecursiveMode::NonRecursive) {
                Ok(()) => {
                    self.dirs.insert(dir);
                }
                // Gone meanwhile: nothing to watch.
                Err(_) if !dir.is_dir() => {}
                Err(err) => warnings.extend(self.once(format!(
                    "cannot watch {}: {err} (raise fs.inotify.max_user_watches, or ignore what need not be watched)",
                    dir.display()
                ))),
            }
        }
        warnings
    }

    /// Forgets the directories at and under `path`: removed (their watches ended with
    /// them) or moved away (their watches would report them under their old names).
    fn forget(&mut self, path: &Path) {
        // Sorted, the directories under `path` follow it: a removed file costs a lookup.
        let gone: Vec<PathBuf> = self
            .dirs
            .range(path.to_path_buf()..)
            .take_while(|d| d.starts_with(path))
            .cloned()
            .collect();
        for dir in gone {
            let _ = self.inner.unwatch(&dir);
            self.dirs.remove(&dir);
        }
    }

    fn once(&mut self, warning: String) -> Option<String> {
        self.told.insert(warning.clone()).then_some(warning)
    }
}

fn lock(matcher: &Mutex<Matcher>) -> std::sync::MutexGuard<'_, Matcher> {
    matcher.lock().unwrap_or_else(PoisonError::into_inner)
}
