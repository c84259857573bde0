//! Reading typed values out of a spanned TOML tree while collecting every problem.
//!
//! serde's derive stops at the first error, but users fix config files faster when they
//! see every mistake at once, each with file:line:column. So services.toml is parsed
//! into toml's spanned `DeTable` and walked here by hand; each accessor records a
//! diagnostic and returns `None` instead of failing.

use std::ops::Range;
use std::time::Duration;

use toml::Spanned;
use toml::de::{DeTable, DeValue};

use super::CommandLine;
use super::vars::{ExpandError, Vars};

/// One problem in the config file, located by a byte span of the source.
#[derive(Debug, Clone)]
pub struct Diagnostic {
    pub span: Range<usize>,
    pub message: String,
    /// What to do about it, shown under the pointer.
    pub help: Option<String>,
}

/// The reading context of one config file: the problems collected so far, and the
/// variables that `${...}` in string values expand from.
#[derive(Debug, Default)]
pub struct Diagnostics {
    pub items: Vec<Diagnostic>,
    pub vars: Vars,
    /// Asks the compose tool for a compose file's service names (a layer above knows
    /// how); without it, or when the tool cannot answer, the file is scanned.
    pub compose_names: Option<super::ComposeNames>,
    /// The ports chosen for `port = "auto"`, by service, once read.
    pub chosen_ports: std::collections::BTreeMap<String, u16>,
    pub hooks: super::Hooks,
}

impl Diagnostics {
    /// `text` (the string value at `span`) with its `${...}` expanded; a problem is
    /// recorded and `None` returned when it cannot be.
    pub fn expand(&mut self, text: &str, span: Range<usize>, what: &str) -> Option<String> {
        let expanded = if text.contains("${") {
            self.vars.expand(text)
        } else {
            Ok(text.to_string())
        };
        match expanded {
            // A C string (an argument, a variable, a path) ends at a NUL byte: the
            // program would get less than was written.
            Ok(expanded) if expanded.contains('\0') => {
                self.error_with_help(
                    span,
                    format!("{what} contains a NUL byte"),
                    "remove it: arguments, variables and paths cannot hold one",
                );
                None
            }
            Ok(expanded) => Some(expanded),
            Err(err) => {
                let help = match &err {
                    ExpandError::Undefined(name) => {
                        format!("set {name} in the environment or an env_file, or write ${{{name}:-default}}")
                    }
                    ExpandError::Loop(_) => "make one of these variables a plain value".to_string(),
                    ExpandError::TooLarge => "make the variables plain values, or name each one once".to_string(),
                    ExpandError::NoPort(_) => "name a service with `port = N` or `port = \"auto\"`".to_string(),
                    _ => "write ${NAME} or ${NAME:-default}; $${ stands for a literal ${".to_string(),
                };
                self.error_with_help(span, format!("{what}: {err}"), help);
                None
            }
        }
    }

    pub fn error(&mut self, span: Range<usize>, message: impl Into<String>) {
        self.items.push(Diagnostic {
            span,
            message: message.into(),
            help: None,
        });
    }

    pub fn error_with_help(&mut self, span: Range<usize>, message: impl Into<String>, help: impl Into<String>) {
        self.items.push(Diagnostic {
            span,
            message: message.into(),
            help: Some(help.into()),
        });
    }
}

pub type Value<'i> = Spanned<DeValue<'i>>;

/// Reads the keys of one table, remembering which were known so that the rest can be
/// reported as unknown (with a suggestion when one is close).
pub struct TableReader<'t, 'i> {
    table: &'t DeTable<'i>,
    context: String,
    known: &'static [&'static str],
}

impl<'t, 'i> TableReader<'t, 'i> {
    pub fn new(table: &'t DeTable<'i>, context: impl Into<String>, known: &'static [&'static str]) -> Self {
        TableReader {
            table,
            context: context.into(),
            known,
        }
    }

    pub fn get(&self, key: &str) -> Option<&'t Value<'i>> {
        debug_assert!(self.known.contains(&key), "key `{key}` missing from the known list");
        self.table.get(key)
    }

    /// Reports every key that is not in the known list.
    pub fn report_unknown(&self, diags: &mut Diagnostics) {
        for key in self.table.keys() {
            let name: &str = key.get_ref();
            if self.known.contains(&name) {
                continue;
            }
            let message = format!("unknown key `{name}` in {}", self.context);
            match suggest(name, self.known.iter().copied()) {
                Some(close) => diags.error_with_help(key.span(), message, format!("did you mean `{close}`?")),
                None => diags.error_with_help(
                    key.span(),
                    message,
                    format!("known keys are: {}", self.known.join(", ")),
                ),
            }
        }
    }

    pub fn string(&self, key: &str, diags: &mut Diagnostics) -> Option<Spanned<String>> {
        let value = self.get(key)?;
        as_string(value, &self.what(key), diags)
    }

    pub fn duration(&self, key: &str, diags: &mut Diagnostics) -> Option<Spanned<Duration>> {
        let value = self.get(key)?;
        as_duration(value, &self.what(key), diags)
    }

    pub fn port(&self, key: &str, diags: &mut Diagnostics) -> Option<Spanned<u16>> {
        let value = self.get(key)?;
        as_port(value, &self.what(key), diags)
    }

    pub fn what(&self, key: &str) -> String {
        format!("`{key}` in {}", self.context)
    }
}

/// The closest of `candidates` to `name`, if it is close enough to be a likely typo.
pub fn suggest<'a>(name: &str, candidates: impl IntoIterator<Item = &'a str>) -> Option<&'a str> {
    candidates
        .into_iter()
        .map(|candidate| (strsim::jaro_winkler(name, candidate), candidate))
        .filter(|(score, _)| *score > 0.8)
        .max_by(|a, b| a.0.total_cmp(&b.0))
        .map(|(_, candidate)| candidate)
}

pub fn type_name(value: &DeValue<'_>) -> &'static str {
    match value {
        DeValue::String(_) => "a string",
        DeValue::Integer(_) => "an integer",
        DeValue::Float(_) => "a float",
        DeValue::Boolean(_) => "a boolean",
        DeValue::Datetime(_) => "a datetime",
        DeValue::Array(_) => "an array",
        DeValue::Table(_) => "a table",
    }
}

pub(super) fn wrong_type(value: &Value<'_>, what: &str, expected: &str, diags: &mut Diagnostics) {
    diags.error(
        value.span(),
        format!("{what} must be {expected}, found {}", type_name(value.get_ref())),
    );
}

pub fn as_string(value: &Value<'_>, what: &str, diags: &mut Diagnostics) -> Option<Spanned<String>> {
    match value.get_ref() {
        DeValue::String(s) => diags
            .expand(s, value.span(), what)
            .map(|s| Spanned::new(value.span(), s)),
        _ => {
            wrong_type(value, what, "a string", diags);
            None
        }
    }
}

pub fn as_table<'t, 'i>(value: &'t Value<'i>, what: &str, diags: &mut Diagnostics) -> Option<&'t DeTable<'i>> {
    match value.get_ref() {
        DeValue::Table(table) => Some(table),
        _ => {
            wrong_type(value, what, "a table", diags);
            None
        }
    }
}

pub fn as_integer(value: &Value<'_>, what: &str, diags: &mut Diagnostics) -> Option<i64> {
    match value.get_ref() {
        DeValue::Integer(int) => match i64::from_str_radix(int.as_str(), int.radix()) {
            Ok(n) => Some(n),
            Err(_) => {
                diags.error(value.span(), format!("{what} is too large"));
                None
            }
        },
        _ => {
            wrong_type(value, what, "an integer", diags);
            None
        }
    }
}

/// A port: an integer, or a string such as `"${API_PORT:-8080}"` that expands to one.
/// A port: a whole number, or a string that expands to one or to a sum of them
/// (`"${API_BASE:-8080} + ${XTASK_REPLICA}"`).
pub fn as_port(value: &Value<'_>, what: &str, diags: &mut Diagnostics) -> Option<Spanned<u16>> {
    let n = match value.get_ref() {
        DeValue::String(s) => {
            let text = diags.expand(s, value.span(), what)?;
            let sum = text
                .split('+')
                .map(|term| term.trim().parse::<i64>().ok())
                .try_fold(0i64, |sum, term| sum.checked_add(term?));
            match sum {
                Some(n) => n,
                None => {
                    diags.error_with_help(
                        value.span(),
                        format!("{what} must be a port from 1 to 65535, found `{text}`"),
                        "write a number, or a sum such as \"8080 + ${XTASK_REPLICA}\"",
                    );
                    return None;
                }
            }
        }
        _ => as_integer(value, what, diags)?,
    };
    match u16::try_from(n) {
        Ok(port) if port > 0 => Some(Spanned::new(value.span(), port)),
        _ => {
            diags.error(
                value.span(),
                format!("{what} must be a port from 1 to 65535, found {n}"),
            );
            None
        }
    }
}

/// Durations are strings such as "500ms", "3s" or "1m 30s" (humantime's syntax).
pub fn as_duration(value: &Value<'_>, what: &str, diags: &mut Diagnostics) -> Option<Spanned<Duration>> {
    let text = match value.get_ref() {
        DeValue::String(s) => diags.expand(s, value.span(), what)?,
        _ => {
            wrong_type(value, what, "a duration string such as \"500ms\" or \"3s\"", diags);
            return None;
        }
    };
    match humantime::parse_duration(&text) {
        Ok(duration) if duration > super::MAX_DURATION => {
            diags.error_with_help(
                value.span(),
                format!("{what} is longer than 24h, the longest duration xtask accepts"),
                "write a duration of at most \"24h\"",
            );
            None
        }
        Ok(duration) => Some(Spanned::new(value.span(), duration)),
        Err(err) => {
            diags.error_with_help(
                value.span(),
                format!("{what} is not a duration: {err}"),
                "write a number with a unit, such as \"500ms\", \"3s\" or \"1m\"",
            );
            None
        }
    }
}

/// A `true` or `false` under `key`, if present.
pub fn boolean(reader: &TableReader<'_, '_>, key: &str, diags: &mut Diagnostics) -> Option<bool> {
    let value = reader.get(key)?;
    match value.get_ref() {
        DeValue::Boolean(yes) => Some(*yes),
        _ => {
            wrong_type(value, &reader.what(key), "true or false", diags);
            None
        }
    }
}

/// A list of strings; a lone string is accepted as a list of one.
pub fn as_string_list(value: &Value<'_>, what: &str, diags: &mut Diagnostics) -> Option<Vec<Spanned<String>>> {
    match value.get_ref() {
        DeValue::Array(items) => {
            let mut out = Vec::new();
            for item in items {
                out.push(as_string(item, &format!("each item of {what}"), diags)?);
            }
            Some(out)
        }
        _ => {
            wrong_type(value, what, "an array of strings", diags);
            None
        }
    }
}

/// An environment value: strings as they are, numbers and booleans in their TOML text
/// (as docker compose accepts them).
pub fn as_env_value(value: &Value<'_>, what: &str, diags: &mut Diagnostics) -> Option<String> {
    match value.get_ref() {
        DeValue::String(s) => diags.expand(s, value.span(), what),
        DeValue::Integer(int) if int.radix() == 10 => Some(int.as_str().to_string()),
        DeValue::Float(float) => Some(float.as_str().to_string()),
        DeValue::Boolean(b) => Some(b.to_string()),
        _ => {
            wrong_type(value, what, "a string, number or boolean", diags);
            None
        }
    }
}

/// A command: a string (run by `sh -c`) or an array (run directly), not empty.
pub fn parse_command(value: &Value<'_>, what: &str, diags: &mut Diagnostics) -> Option<CommandLine> {
    match value.get_ref() {
        DeValue::String(s) if s.trim().is_empty() => {
            diags.error_with_help(
                value.span(),
                format!("{what} is empty"),
                "write the command that starts the service",
            );
            None
        }
        DeValue::String(s) => diags.expand(s, value.span(), what).map(CommandLine::Shell),
        DeValue::Array(_) => {
            let words = as_string_list(value, what, diags)?;
            match words.first() {
                Some(first) if !first.get_ref().trim().is_empty() => {
                    Some(CommandLine::Exec(words.into_iter().map(Spanned::into_inner).collect()))
                }
                _ => {
                    diags.error_with_help(
                        value.span(),
                        format!("{what} is empty"),
                        "name the program first, then its arguments",
                    );
                    None
                }
            }
        }
        other => {
            diags.error(
                value.span(),
                format!(
                    "{what} must be a string or an array of strings, found {}",
                    type_name(other)
                ),
            );
            None
        }
    }
}

/// 1-based line and column of a byte offset.
pub fn line_col(source: &str, offset: usize) -> (usize, usize) {
    let offset = offset.min(source.len());
    let before = source.get(..floor_char_boundary(source, offset)).unwrap_or("");
    let line = before.matches('\n').count().saturating_add(1);
    let line_start = before.rfind('\n').map_or(0, |i| i.saturating_add(1));
    let column = before.get(line_start..).unwrap_or("").chars().count().saturating_add(1);
    (line, column)
}

fn floor_char_boundary(source: &str, mut offset: usize) -> usize {
    while offset > 0 && !source.is_char_boundary(offset) {
        offset = offset.saturating_sub(1);
    }
    offset
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn line_col_counts_from_one() {
        let src = "a = 1\nbé = 2\n";
        assert_eq!(line_col(src, 0), (1, 1));
        assert_eq!(line_col(src, 6), (2, 1));
        assert_eq!(line_col(src, 10), (2, 4));
    }

    #[test]
    fn suggest_finds_typos_only() {
        assert_eq!(suggest("helth", ["health", "command"]), Some("health"));
        assert_eq!(suggest("zzz", ["health", "command"]), None);
    }
}
