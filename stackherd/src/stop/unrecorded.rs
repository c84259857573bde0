//! What a stop could not record in the state directory (a read-only or full file
//! system), said once at its end. The stop itself never needs to write: the processes
//! are stopped all the same, and the records it could not remove name processes that
//! are gone, which every command recognises as stale.

use std::path::Path;

use crate::service::Context;
use crate::state::{Lock, Unrecorded};

/// Warns, once, of everything noted on the lock as not written.
pub fn report(ctx: &Context, lock: &Lock) {
    if let Some(text) = describe(ctx.registry.dir(), &lock.unrecorded()) {
        ctx.ui.warn(text);
    }
}

/// One sentence for all of `notes`, or `None` when there are none. The reason is the
/// first one's: a read-only or full file system fails every write alike.
fn describe(dir: &Path, notes: &[(Unrecorded, String)]) -> Option<String> {
    let (_, why) = notes.first()?;
    let mut no_lock = false;
    let mut kept: Vec<&str> = Vec::new();
    let mut not_marked: Vec<&str> = Vec::new();
    let mut unlogged: Vec<&str> = Vec::new();
    let (mut monitor, mut temporary) = (false, false);
    for (what, _) in notes {
        match what {
            Unrecorded::LockFile => no_lock = true,
            Unrecorded::Removal(service) => kept.push(service),
            Unrecorded::Record(service) => not_marked.push(service),
            Unrecorded::StopOutput(service) => unlogged.push(service),
            Unrecorded::Monitor => monitor = true,
            Unrecorded::Temporary => temporary = true,
        }
    }
    for list in [&mut kept, &mut not_marked, &mut unlogged] {
        list.sort_unstable();
        list.dedup();
    }
    // A record that stays says what it said before the stop; that it could not say
    // `stopping` on the way matters only for a service still alive. (A record removed
    // after all is forgotten by the lock.)
    not_marked.retain(|service| !kept.contains(service));

    let mut parts = Vec::new();
    if no_lock {
        parts.push(
            "it has no lock file and cannot get one, so this ran without the lock (no command that writes can take it meanwhile)"
                .to_string(),
        );
    }
    let mut left = Vec::new();
    if !kept.is_empty() {
        left.push(format!("the {} of {}", plural("record", kept.len()), and_list(&kept)));
    }
    if monitor {
        left.push("the monitor's record".to_string());
    }
    if temporary {
        left.push("temporary files of interrupted writes".to_string());
    }
    if !left.is_empty() {
        let one = left.len() == 1 && kept.len() < 2 && !temporary;
        parts.push(format!(
            "it still holds {} (stale now: `cleanup` removes {} once the directory can be written)",
            and_list(&left),
            if one { "it" } else { "them" }
        ));
    }
    if !not_marked.is_empty() {
        parts.push(format!(
            "the {} of {} could not be marked `stopping`",
            plural("record", not_marked.len()),
            and_list(&not_marked)
        ));
    }
    if !unlogged.is_empty() {
        parts.push(format!(
            "the output of the `stop_command` of {} was not logged",
            and_list(&unlogged)
        ));
    }
    let text = format!(
        "the state directory {} cannot be written ({why}): {}",
        dir.display(),
        parts.join("; ")
    );
    Some(text)
}

fn plural(word: &str, n: usize) -> String {
    if n == 1 { word.to_string() } else { format!("{word}s") }
}

/// `a`, `a and b`, `a, b and c`.
fn and_list(items: &[impl AsRef<str>]) -> String {
    match items {
        [] => String::new(),
        [one] => one.as_ref().to_string(),
        [rest @ .., last] => format!(
            "{} and {}",
            rest.iter().map(AsRef::as_ref).collect::<Vec<_>>().join(", "),
            last.as_ref()
        ),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn check(notes: &[Unrecorded], expected: &str) {
        let notes: Vec<(Unrecorded, String)> = notes
            .iter()
            .map(|n| (n.clone(), "read-only file system".to_string()))
            .collect();
        let text = describe(Path::new("/p/.xtask"), &notes).unwrap_or_default();
        assert_eq!(text, expected);
    }

    fn removal(s: &str) -> Unrecorded {
        Unrecorded::Removal(s.to_string())
    }

    fn record(s: &str) -> Unrecorded {
        Unrecorded::Record(s.to_string())
    }

    #[test]
    fn what_could_not_be_recorded_is_one_sentence() {
        check(&[], "");
        let head = "the state directory /p/.xtask cannot be written (read-only file system): ";
        let stale = "(stale now: `cleanup` removes";
        check(
            &[removal("api")],
            &format!("{head}it still holds the record of api {stale} it once the directory can be written)"),
        );
        // A record marked nothing on the way and then not removed is named once.
        check(
            &[record("web"), removal("web"), removal("api"), Unrecorded::Monitor],
            &format!(
                "{head}it still holds the records of api and web and the monitor's record {stale} them once the directory can be written)"
            ),
        );
        check(
            &[Unrecorded::Monitor],
            &format!("{head}it still holds the monitor's record {stale} it once the directory can be written)"),
        );
        check(
            &[record("db")],
            &format!("{head}the record of db could not be marked `stopping`"),
        );
        check(
            &[Unrecorded::LockFile, Unrecorded::StopOutput("db".to_string())],
            &format!(
                "{head}it has no lock file and cannot get one, so this ran without the lock (no command that writes can take it meanwhile); the output of the `stop_command` of db was not logged"
            ),
        );
        check(
            &[
                Unrecorded::Temporary,
                removal("a"),
                removal("b"),
                removal("c"),
                record("d"),
            ],
            &format!(
                "{head}it still holds the records of a, b and c and temporary files of interrupted writes {stale} them once the directory can be written); the record of d could not be marked `stopping`"
            ),
        );
    }
}
