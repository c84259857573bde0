//! The compose file's service names, asked of the compose tool (`config --services`,
//! 4.3 s with compose v1) only when what it reads changed: they are cached in the state
//! directory under a key of the compose file, the files it includes (`include:`, and
//! any other `.yml`/`.yaml` path it mentions, followed to the files they mention), the
//! `.env` beside it and `COMPOSE_PROFILES`.

use std::path::{Path, PathBuf};

use crate::config::fnv1a;
use crate::docker;
use crate::state::{Registry, read_project_file};

/// The most files followed from the compose file: a team's includes are a handful, a
/// loop of includes (which the tool refuses anyway) must not make us read forever.
const MAX_FILES: usize = 64;
/// The most read of one file: compose files are small; a huge one is not read whole.
const MAX_FILE_BYTES: u64 = 1024 * 1024;

/// The names of the services `file` defines; `None` when the tool cannot say.
pub fn names(file: &Path, state_dir: &Path) -> Option<Vec<String>> {
    let key = key(file);
    if let Some(names) = Registry::cached_compose_names(state_dir, key) {
        return Some(names);
    }
    let names = docker::compose_service_names(file)?;
    Registry::cache_compose_names(state_dir, key, &names);
    Some(names)
}

/// The key of what the compose tool reads to name the services of `file`.
fn key(file: &Path) -> u64 {
    let mut read = Vec::new();
    for path in compose_files(file) {
        read.extend(path.as_os_str().as_encoded_bytes());
        read.push(0);
        read.extend(small_file(&path).unwrap_or_default());
        read.push(0);
    }
    if let Some(env) = file.parent().and_then(|dir| small_file(&dir.join(".env"))) {
        read.extend(env);
    }
    read.push(0);
    read.extend(std::env::var("COMPOSE_PROFILES").unwrap_or_default().into_bytes());
    fnv1a(&read)
}

/// `file`, then every `.yml`/`.yaml` file it mentions (relative to its directory), then
/// the ones those mention. A mention that is not an include (an `extends` file, a path
/// in a comment) only makes the key change more often than it must, never less.
fn compose_files(file: &Path) -> Vec<PathBuf> {
    let mut files = vec![file.to_path_buf()];
    let mut next = 0;
    while let Some(current) = files.get(next).cloned() {
        next = next.saturating_add(1);
        let Some(text) = small_file(&current).map(|b| String::from_utf8_lossy(&b).into_owned()) else {
            continue;
        };
        let dir = current.parent().unwrap_or(Path::new("."));
        for mentioned in mentioned_yaml(&text) {
            let path = dir.join(mentioned);
            if !files.contains(&path) && files.len() < MAX_FILES {
                files.push(path);
            }
        }
    }
    files
}

/// The words of `text` that name a YAML file: `- ./base.yml`, `path: "db/compose.yaml"`,
/// `[a.yml, b.yml]`.
fn mentioned_yaml(text: &str) -> impl Iterator<Item = &str> {
    text.split(|c: char| c.is_whitespace() || "\"'[],{}".contains(c))
        .map(|word| word.trim_start_matches("path:").trim_start_matches('-'))
        .filter(|word| word.ends_with(".yml") || word.ends_with(".yaml"))
}

/// A regular file's bytes, up to `MAX_FILE_BYTES`; `None` when it cannot be read.
fn small_file(path: &Path) -> Option<Vec<u8>> {
    read_project_file(path, MAX_FILE_BYTES).ok()
}

#[cfg(test)]
mod tests {
    use super::{key, mentioned_yaml};

    #[test]
    fn an_edit_of_an_included_file_changes_the_key() {
        let dir = std::env::temp_dir().join(format!("xtask-compose-key-{}", std::process::id()));
        std::fs::create_dir_all(dir.join("db")).unwrap();
        let file = dir.join("compose.yaml");
        std::fs::write(&file, "include:\n  - path: db/compose.yaml\n").unwrap();
        std::fs::write(
            dir.join("db/compose.yaml"),
            "include: [../more.yml]\nservices:\n  db: {}\n",
        )
        .unwrap();
        std::fs::write(dir.join("more.yml"), "services:\n  a: {}\n").unwrap();
        let before = key(&file);
        assert_eq!(key(&file), before, "the key is not stable");
        std::fs::write(dir.join("more.yml"), "services:\n  a: {}\n  b: {}\n").unwrap();
        let after = key(&file);
        std::fs::remove_dir_all(&dir).unwrap();
        assert_ne!(before, after, "a service added two includes deep left the key alone");
    }

    #[test]
    fn yaml_files_are_found_in_the_forms_compose_writes_them() {
        let text = "include:\n  - ./base.yml\n  - path: \"db/compose.yaml\"\n  - path: [a.yml, 'b.yaml']\nservices:\n  web:\n    image: x\n";
        let found: Vec<&str> = mentioned_yaml(text).collect();
        assert_eq!(found, ["./base.yml", "db/compose.yaml", "a.yml", "b.yaml"]);
    }
}
