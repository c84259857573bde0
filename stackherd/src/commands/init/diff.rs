//! The diff `init --dry-run` prints: unified, two lines of context, from a line-level
//! longest common subsequence (the files it edits are small).

/// A unified diff of `path` from `before` (none: a new file) to `after`, with two
/// lines of context: the lines in common are a longest common subsequence (the files
/// are small, a quadratic table is nothing).
pub fn diff(path: &str, before: Option<&str>, after: &str) -> String {
    let old: Vec<&str> = before.map(|b| b.lines().collect()).unwrap_or_default();
    let new: Vec<&str> = after.lines().collect();
    let ops = line_ops(&old, &new);
    let from = if before.is_some() {
        format!("a/{path}")
    } else {
        "/dev/null".to_string()
    };
    let mut out = format!("--- {from}\n+++ b/{path}\n");
    // Hunks: runs of changes with the context around them, merged when they touch.
    let changed: Vec<usize> = ops
        .iter()
        .enumerate()
        .filter(|(_, op)| op.0 != ' ')
        .map(|(i, _)| i)
        .collect();
    let mut k = 0;
    while let Some(&first) = changed.get(k) {
        let start = first.saturating_sub(CONTEXT);
        let mut end = first;
        while let Some(&next) = changed.get(k) {
            if next > end.saturating_add(2 * CONTEXT).saturating_add(1) && next != first {
                break;
            }
            end = next;
            k = k.saturating_add(1);
        }
        let end = end.saturating_add(CONTEXT).saturating_add(1).min(ops.len());
        let hunk = ops.get(start..end).unwrap_or_default();
        let (old_at, new_at) = ops
            .get(..start)
            .unwrap_or_default()
            .iter()
            .fold((0usize, 0usize), |(o, n), op| {
                (
                    o.saturating_add(usize::from(op.0 != '+')),
                    n.saturating_add(usize::from(op.0 != '-')),
                )
            });
        let old_len = hunk.iter().filter(|op| op.0 != '+').count();
        let new_len = hunk.iter().filter(|op| op.0 != '-').count();
        let at = |from: usize, len: usize| if len == 0 { from } else { from.saturating_add(1) };
        out.push_str(&format!(
            "@@ -{},{old_len} +{},{new_len} @@\n",
            at(old_at, old_len),
            at(new_at, new_len)
        ));
        for (sign, line) in hunk {
            out.push_str(&format!("{sign}{line}\n"));
        }
    }
    out
}

/// Lines of context around a change.
const CONTEXT: usize = 2;

/// The edit from `old` to `new`, line by line: ' ' kept, '-' removed, '+' added.
fn line_ops<'a>(old: &[&'a str], new: &[&'a str]) -> Vec<(char, &'a str)> {
    // common[i][j]: the longest common subsequence of old[i..] and new[j..].
    let width = new.len().saturating_add(1);
    let mut common = vec![0usize; old.len().saturating_add(1).saturating_mul(width)];
    let cell = |i: usize, j: usize| i.saturating_mul(width).saturating_add(j);
    for i in (0..old.len()).rev() {
        for j in (0..new.len()).rev() {
            let value = if old.get(i) == new.get(j) {
                common
                    .get(cell(i.saturating_add(1), j.saturating_add(1)))
                    .copied()
                    .unwrap_or(0)
                    .saturating_add(1)
            } else {
                let down = common.get(cell(i.saturating_add(1), j)).copied().unwrap_or(0);
                let right = common.get(cell(i, j.saturating_add(1))).copied().unwrap_or(0);
                down.max(right)
            };
            if let Some(c) = common.get_mut(cell(i, j)) {
                *c = value;
            }
        }
    }
    let (mut i, mut j, mut ops) = (0, 0, Vec::new());
    while i < old.len() || j < new.len() {
        match (old.get(i), new.get(j)) {
            (Some(a), Some(b)) if a == b => {
                ops.push((' ', *a));
                (i, j) = (i.saturating_add(1), j.saturating_add(1));
            }
            (Some(a), Some(_))
                if common.get(cell(i.saturating_add(1), j)) >= common.get(cell(i, j.saturating_add(1))) =>
            {
                ops.push(('-', *a));
                i = i.saturating_add(1);
            }
            (Some(a), None) => {
                ops.push(('-', *a));
                i = i.saturating_add(1);
            }
            (_, Some(b)) => {
                ops.push(('+', *b));
                j = j.saturating_add(1);
            }
            (None, None) => break,
        }
    }
    ops
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_diff_shows_added_lines_with_context() {
        let d = diff("Makefile", Some("a\nb\nc\n"), "a\nb\nc\n\ninclude x\n");
        assert_eq!(
            d,
            "--- a/Makefile\n+++ b/Makefile\n@@ -2,2 +2,4 @@\n b\n c\n+\n+include x\n"
        );
        let new = diff("s.toml", None, "x\ny\n");
        assert_eq!(new, "--- /dev/null\n+++ b/s.toml\n@@ -0,0 +1,2 @@\n+x\n+y\n");
        // Two edits far apart: two hunks, the lines between them untouched.
        let old = "[workspace]\nmembers = [\"app\"]\n1\n2\n3\n4\n5\n6\n[profile.dev]\n";
        let new = "[workspace]\nmembers = [\"xtask\", \"app\"]\n1\n2\n3\n4\n5\n6\n[profile.dev]\n\n[profile.xtask]\n";
        let d = diff("Cargo.toml", Some(old), new);
        assert_eq!(
            d,
            "--- a/Cargo.toml\n+++ b/Cargo.toml\n@@ -1,4 +1,4 @@\n [workspace]\n-members = [\"app\"]\n+members = [\"xtask\", \"app\"]\n 1\n 2\n@@ -8,2 +8,4 @@\n 6\n [profile.dev]\n+\n+[profile.xtask]\n"
        );
    }
}
