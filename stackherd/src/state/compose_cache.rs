//! The compose file's service names, cached in the state directory
//! (`compose-services.json`) under a key of what the compose tool reads: asking the
//! tool (`config --services`) took 4.3 s with compose v1, on every `status`.

use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

use super::Registry;
use super::atomic::write_atomically;
use super::private::trusted_tree;
use super::regular::{SMALL_FILE_MAX, read_small};

#[derive(Serialize, Deserialize)]
struct Cached {
    /// The key of the compose file's contents (and of what else the tool reads).
    key: String,
    services: Vec<String>,
}

impl Registry {
    fn compose_cache_path(dir: &Path) -> PathBuf {
        dir.join("compose-services.json")
    }

    /// The names cached in the state directory `dir` under `key`; `None` when another
    /// key (the file changed) or nothing is cached.
    pub fn cached_compose_names(dir: &Path, key: u64) -> Option<Vec<String>> {
        if !trusted_tree(dir) {
            return None;
        }
        let bytes = read_small(&Self::compose_cache_path(dir), SMALL_FILE_MAX).ok()?;
        let cached: Cached = serde_json::from_slice(&bytes).ok()?;
        (cached.key == format!("{key:016x}")).then_some(cached.services)
    }

    /// Caches `services` under `key`, where the state directory already exists (a
    /// command that reads the config does not create it). Best effort: without the
    /// cache the compose tool is asked again, which is only slower.
    pub fn cache_compose_names(dir: &Path, key: u64, services: &[String]) {
        if !dir.is_dir() || !trusted_tree(dir) {
            return;
        }
        let cached = Cached {
            key: format!("{key:016x}"),
            services: services.to_vec(),
        };
        if let Ok(json) = serde_json::to_vec_pretty(&cached) {
            let _ = write_atomically(&Self::compose_cache_path(dir), &json);
        }
    }
}
