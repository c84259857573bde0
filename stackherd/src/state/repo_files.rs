//! Files of the user's own repository that `init` creates or extends (their
//! manifests, `.gitignore`, Makefile): written whole to a temporary file beside them
//! and renamed into place, so that an interrupted `init` never leaves half a file.
//! Unlike the state directory's files they are the repository's: an existing file
//! keeps its permissions, a new one gets the user's umask.

use std::fs::{self, OpenOptions};
use std::io::{self, Write};
use std::os::unix::fs::{OpenOptionsExt, PermissionsExt};
use std::path::Path;

/// Writes `text` to `path`, creating its directory; an existing file's mode is kept.
pub fn write(path: &Path, text: &str) -> io::Result<()> {
    let dir = path.parent().unwrap_or(Path::new("."));
    fs::create_dir_all(dir)?;
    let name = path
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_default();
    let tmp = dir.join(format!(".{name}.init{}", std::process::id()));
    let mode = fs::metadata(path).ok().map(|m| m.permissions().mode());
    let written = (|| {
        let mut file = OpenOptions::new()
            .write(true)
            .create_new(true)
            .mode(mode.unwrap_or(0o666))
            .open(&tmp)?;
        if let Some(mode) = mode {
            // create_new's mode went through the umask: the repository's own is kept.
            file.set_permissions(fs::Permissions::from_mode(mode))?;
        }
        file.write_all(text.as_bytes())?;
        file.sync_all()?;
        fs::rename(&tmp, path)
    })();
    if written.is_err() {
        let _ = fs::remove_file(&tmp);
    }
    written
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_file_is_created_and_an_existing_one_keeps_its_mode() {
        let dir = std::env::temp_dir().join(format!("stackherd-repo-files-{}", std::process::id()));
        let _ = fs::remove_dir_all(&dir);
        let new = dir.join("a/b/new.txt");
        write(&new, "one\n").unwrap();
        assert_eq!(fs::read_to_string(&new).unwrap(), "one\n");
        let old = dir.join("script.sh");
        fs::write(&old, "x").unwrap();
        fs::set_permissions(&old, fs::Permissions::from_mode(0o750)).unwrap();
        write(&old, "y").unwrap();
        assert_eq!(fs::read_to_string(&old).unwrap(), "y");
        assert_eq!(fs::metadata(&old).unwrap().permissions().mode() & 0o777, 0o750);
        let left = fs::read_dir(&dir).unwrap().count();
        fs::remove_dir_all(&dir).unwrap();
        assert_eq!(left, 2, "no temporary file left");
    }
}
