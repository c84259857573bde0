//! The files a config is read from: services.toml, its `services.local.toml` when one
//! lies beside it, or the files given with `--config` (several: later ones win), merged
//! as Docker Compose merges its override files: scalars and arrays replace, tables merge
//! key by key (so `env` merges by variable).
//!
//! The files' texts are kept end to end in one string, and every span of the merged
//! tree points into it: a value keeps the place it was written, so a diagnostic (and
//! `check --print`) names the file, line and column it came from.

use std::ops::Range;
use std::path::{Path, PathBuf};

use toml::Spanned;
use toml::de::{DeArray, DeTable, DeValue};

use super::read::{Diagnostics, line_col};

/// The texts of the config's files, end to end, and where each one lies.
#[derive(Debug, Clone, Default)]
pub struct Sources {
    pub text: String,
    pub files: Vec<(PathBuf, Range<usize>)>,
}

impl Sources {
    /// Reads `paths`; a lone file brings its `NAME.local.toml` sibling when there is one.
    /// The error names the file that could not be read.
    pub fn read(paths: &[PathBuf]) -> Result<Sources, (PathBuf, std::io::Error)> {
        let mut all: Vec<PathBuf> = paths.to_vec();
        if let [only] = paths
            && let Some(local) = local_sibling(only).filter(|p| p.is_file())
        {
            all.push(local);
        }
        let mut sources = Sources::default();
        for path in all {
            let text = match std::fs::read_to_string(&path) {
                Ok(text) => text,
                Err(err) => return Err((path, err)),
            };
            sources.add(path, &text);
        }
        Ok(sources)
    }

    /// One file's text, as if read from `path`.
    pub fn single(path: &Path, text: &str) -> Sources {
        let mut sources = Sources::default();
        sources.add(path.to_path_buf(), text);
        sources
    }

    fn add(&mut self, path: PathBuf, text: &str) {
        // A newline between files, so that no file's last line runs into the next.
        if !self.text.is_empty() && !self.text.ends_with('\n') {
            self.text.push('\n');
        }
        let start = self.text.len();
        self.text.push_str(text);
        self.files.push((path, start..self.text.len()));
    }

    /// The first file: the project root is its directory.
    pub fn path(&self) -> &Path {
        self.files
            .first()
            .map_or(Path::new(super::DEFAULT_FILE), |(p, _)| p.as_path())
    }

    /// The file a byte of the joined text belongs to, and its text.
    pub fn file_at(&self, offset: usize) -> (&Path, &str, usize) {
        let found = self
            .files
            .iter()
            .rfind(|(_, range)| range.start <= offset)
            .or(self.files.first());
        match found {
            Some((path, range)) => (path, self.text.get(range.clone()).unwrap_or(""), range.start),
            None => (Path::new(super::DEFAULT_FILE), "", 0),
        }
    }

    /// `file:line:column` of a byte of the joined text.
    pub fn locate(&self, offset: usize) -> (PathBuf, usize, usize) {
        let (path, text, start) = self.file_at(offset);
        let (line, column) = line_col(text, offset.saturating_sub(start));
        (path.to_path_buf(), line, column)
    }

    /// Every file parsed and merged in order; `None` (with the problems recorded) when
    /// one is not valid TOML.
    pub fn merged(&self, diags: &mut Diagnostics) -> Option<DeTable<'_>> {
        let mut merged: Option<DeTable<'_>> = None;
        for (_, range) in &self.files {
            let text = self.text.get(range.clone())?;
            match DeTable::parse(text) {
                Ok(table) => {
                    let table = shift_table(table.into_inner(), range.start);
                    match merged.as_mut() {
                        Some(base) => merge(base, table),
                        None => merged = Some(table),
                    }
                }
                Err(err) => {
                    let span = err.span().unwrap_or(0..0);
                    diags.error_with_help(
                        shift(span, range.start),
                        format!("invalid TOML: {}", err.message().trim_end()),
                        "fix the syntax; see https://toml.io for the format",
                    );
                }
            }
        }
        if diags.items.is_empty() { merged } else { None }
    }
}

/// `services.toml` → `services.local.toml`, beside it.
fn local_sibling(path: &Path) -> Option<PathBuf> {
    let stem = path.file_stem()?.to_str()?;
    let ext = path.extension().and_then(|e| e.to_str()).unwrap_or("toml");
    (!stem.ends_with(".local")).then(|| path.with_file_name(format!("{stem}.local.{ext}")))
}

/// `over` merged into `base`: tables merge key by key, anything else replaces.
fn merge<'i>(base: &mut DeTable<'i>, over: DeTable<'i>) {
    for (key, value) in over {
        let existing = base.get_mut(key.get_ref().as_ref()).map(Spanned::get_mut);
        match (existing, value.get_ref()) {
            (Some(DeValue::Table(inner)), DeValue::Table(_)) => {
                if let DeValue::Table(over_inner) = value.into_inner() {
                    merge(inner, over_inner);
                }
            }
            // Replaced in place: the value (and its span) is the override's.
            _ => {
                base.insert(key, value);
            }
        }
    }
}

fn shift(span: Range<usize>, by: usize) -> Range<usize> {
    span.start.saturating_add(by)..span.end.saturating_add(by)
}

fn shift_table(table: DeTable<'_>, by: usize) -> DeTable<'_> {
    table
        .into_iter()
        .map(|(key, value)| {
            let span = shift(key.span(), by);
            (Spanned::new(span, key.into_inner()), shift_value(value, by))
        })
        .collect()
}

fn shift_value(value: Spanned<DeValue<'_>>, by: usize) -> Spanned<DeValue<'_>> {
    let span = shift(value.span(), by);
    let inner = match value.into_inner() {
        DeValue::Table(table) => DeValue::Table(shift_table(table, by)),
        DeValue::Array(items) => {
            let mut shifted = DeArray::new();
            for item in items.iter().cloned() {
                shifted.push(shift_value(item, by));
            }
            DeValue::Array(shifted)
        }
        other => other,
    };
    Spanned::new(span, inner)
}

/// The merged config, a line per value: `services.api.port = 8081  # services.local.toml:3`.
pub fn print_merged(sources: &Sources, merged: &DeTable<'_>) -> Vec<String> {
    let mut lines = Vec::new();
    leaves(sources, merged, "", &mut lines);
    let width = lines.iter().map(|(l, _)| l.chars().count()).max().unwrap_or(0).min(72);
    lines
        .into_iter()
        .map(|(line, origin)| format!("{line:<width$}  # {origin}"))
        .collect()
}

fn leaves(sources: &Sources, table: &DeTable<'_>, prefix: &str, out: &mut Vec<(String, String)>) {
    for (key, value) in table {
        let path = if prefix.is_empty() {
            key_text(key.get_ref())
        } else {
            format!("{prefix}.{}", key_text(key.get_ref()))
        };
        match value.get_ref() {
            DeValue::Table(inner) => leaves(sources, inner, &path, out),
            other => {
                let (file, line, _) = sources.locate(value.span().start);
                let name = file
                    .file_name()
                    .map_or_else(|| file.display().to_string(), |n| n.to_string_lossy().into_owned());
                out.push((format!("{path} = {}", render(other)), format!("{name}:{line}")));
            }
        }
    }
}

/// A key as TOML writes it: bare when it can be, quoted otherwise.
fn key_text(key: &str) -> String {
    let bare = !key.is_empty() && key.chars().all(|c| c.is_ascii_alphanumeric() || matches!(c, '-' | '_'));
    if bare { key.to_string() } else { format!("{key:?}") }
}

fn render(value: &DeValue<'_>) -> String {
    match value {
        DeValue::String(s) => format!("{:?}", s.as_ref()),
        DeValue::Integer(i) => i.as_str().to_string(),
        DeValue::Float(f) => f.as_str().to_string(),
        DeValue::Boolean(b) => b.to_string(),
        DeValue::Datetime(d) => d.to_string(),
        DeValue::Array(items) => format!(
            "[{}]",
            items.iter().map(|i| render(i.get_ref())).collect::<Vec<_>>().join(", ")
        ),
        DeValue::Table(table) => format!(
            "{{ {} }}",
            table
                .iter()
                .map(|(k, v)| format!("{} = {}", key_text(k.get_ref()), render(v.get_ref())))
                .collect::<Vec<_>>()
                .join(", ")
        ),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_override_replaces_scalars_and_arrays_and_merges_tables_keeping_each_origin() {
        let mut sources = Sources::default();
        sources.add(
            "services.toml".into(),
            "[services.api]\ncommand = [\"a\", \"b\"]\nport = 8080\nenv = { A = \"1\", B = \"2\" }\n",
        );
        sources.add(
            "services.local.toml".into(),
            "[services.api]\ncommand = [\"c\"]\nport = 8081\nenv = { B = \"3\" }\n",
        );
        let mut diags = Diagnostics::default();
        let merged = sources.merged(&mut diags).expect("merged");
        let lines = print_merged(&sources, &merged);
        let expected = [
            "services.api.command = [\"c\"]",
            "services.api.port = 8081",
            "services.api.env.A = \"1\"",
            "services.api.env.B = \"3\"",
        ];
        let origins = [
            "services.local.toml:2",
            "services.local.toml:3",
            "services.toml:4",
            "services.local.toml:4",
        ];
        assert_eq!(lines.len(), expected.len(), "{lines:#?}");
        for ((line, want), origin) in lines.iter().zip(expected).zip(origins) {
            assert!(
                line.starts_with(want) && line.ends_with(origin),
                "{line:?} is not {want} from {origin}"
            );
        }
    }

    #[test]
    fn invalid_toml_is_located_in_its_own_file() {
        let mut sources = Sources::default();
        sources.add("services.toml".into(), "[services.api]\ncommand = \"x\"\n");
        sources.add("other.toml".into(), "\n[services.api\n");
        let mut diags = Diagnostics::default();
        assert!(sources.merged(&mut diags).is_none());
        let first = diags.items.first().expect("a problem");
        let (file, line, _) = sources.locate(first.span.start);
        assert_eq!((file.as_path(), line), (Path::new("other.toml"), 2));
    }

    #[test]
    fn the_local_sibling_of_a_file() {
        assert_eq!(
            local_sibling(Path::new("/p/services.toml")),
            Some(PathBuf::from("/p/services.local.toml"))
        );
        assert_eq!(local_sibling(Path::new("/p/services.local.toml")), None);
    }
}
