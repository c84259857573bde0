//! Whether a file is `flock`ed right now, as `/proc/locks` lists it: how `status` tells
//! a command that holds the state lock (a start, building and spawning what it has not
//! recorded yet) from one that held it once. Reading the list takes no lock, so the
//! commands that do are never made to wait.

use std::os::unix::fs::MetadataExt;
use std::path::Path;

/// True when someone holds an exclusive `flock` on `path` (not a symbolic link there).
/// `/proc/locks` names a file by device and inode: `1: FLOCK  ADVISORY  WRITE 4242
/// fe:00:1234 0 EOF`, the device's major and minor in hex, the inode in decimal; a
/// line with `->` is a waiter, not a holder.
pub fn exclusively_locked(path: &Path) -> bool {
    let Ok(meta) = std::fs::symlink_metadata(path) else {
        return false;
    };
    let Ok(locks) = std::fs::read_to_string("/proc/locks") else {
        return false;
    };
    let wanted = (
        nix::sys::stat::major(meta.dev()),
        nix::sys::stat::minor(meta.dev()),
        meta.ino(),
    );
    locks.lines().any(|line| {
        let words: Vec<&str> = line.split_whitespace().collect();
        let holds = !words.contains(&"->") && words.contains(&"FLOCK") && words.contains(&"WRITE");
        holds && words.iter().any(|word| file_id(word) == Some(wanted))
    })
}

/// `fe:00:1234` as (major, minor, inode).
fn file_id(word: &str) -> Option<(u64, u64, u64)> {
    let mut parts = word.split(':');
    let major = u64::from_str_radix(parts.next()?, 16).ok()?;
    let minor = u64::from_str_radix(parts.next()?, 16).ok()?;
    let inode = parts.next()?.parse().ok()?;
    parts.next().is_none().then_some((major, minor, inode))
}

#[cfg(test)]
mod tests {
    use super::file_id;

    #[test]
    fn a_file_is_named_by_hex_device_and_decimal_inode() {
        assert_eq!(file_id("fe:00:10011156"), Some((254, 0, 10_011_156)));
        assert_eq!(file_id("103:02:17"), Some((259, 2, 17)));
        assert_eq!(file_id("FLOCK"), None);
        assert_eq!(file_id("1:"), None);
        assert_eq!(file_id("fe:00:12:3"), None);
    }
}
