//! `${VAR}` and `${VAR:-default}` in services.toml string values, from the manager's
//! environment and from env files (dotenv format, read by dotenvy).
//!
//! Lookup order: the manager's environment, then the service's `env_file`, then the
//! project's `env_file`, as Docker Compose lets the shell override `.env`. A value that
//! itself contains `${...}` is expanded in turn, so a loop is possible and reported.
//! `$${` stands for a literal `${`; any other `$` is left for the shell.

use std::collections::HashMap;
use std::fmt;
use std::path::{Path, PathBuf};

/// The variables `${...}` can name.
#[derive(Debug, Clone, Default)]
pub struct Vars {
    /// Set by xtask for the service being read (`XTASK_REPLICA`): they win over all.
    fixed: Vec<(String, String)>,
    /// What `${port:NAME}` names: each service's port.
    ports: std::collections::BTreeMap<String, u16>,
    process: HashMap<String, String>,
    project: Vec<(String, String)>,
    service: Vec<(String, String)>,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ExpandError {
    Undefined(String),
    Unterminated,
    BadName(String),
    Loop(Vec<String>),
    /// `${port:NAME}` names a service without a `port` (a number or "auto").
    NoPort(String),
    /// The expansion grew past `MAX_EXPANDED` bytes or took more than
    /// `MAX_SUBSTITUTIONS` substitutions (variables that each name another twice).
    TooLarge,
}

/// The most bytes one value may expand to.
pub const MAX_EXPANDED: usize = 64 * 1024;
/// The most `${...}` one value may substitute, nested ones included: variables that
/// each name the next twice double the work per level.
pub const MAX_SUBSTITUTIONS: usize = 10_000;

impl Vars {
    pub fn from_process() -> Vars {
        Vars {
            process: std::env::vars().collect(),
            ..Vars::default()
        }
    }

    pub fn set_project_file(&mut self, vars: Vec<(String, String)>) {
        self.project = vars;
    }

    pub fn set_service_file(&mut self, vars: Vec<(String, String)>) {
        self.service = vars;
    }

    /// The variables xtask sets for the service being read (`XTASK_REPLICA`).
    pub fn set_fixed(&mut self, vars: Vec<(String, String)>) {
        self.fixed = vars;
    }

    /// The services' ports, for `${port:NAME}`.
    pub fn set_ports(&mut self, ports: std::collections::BTreeMap<String, u16>) {
        self.ports = ports;
    }

    /// One more variable xtask sets for the service being read (`PORT`).
    pub fn add_fixed(&mut self, name: &str, value: String) {
        self.fixed.push((name.to_string(), value));
    }

    /// The project's env file values: part of every service's environment.
    pub fn project_file(&self) -> &[(String, String)] {
        &self.project
    }

    pub fn service_file(&self) -> &[(String, String)] {
        &self.service
    }

    fn lookup(&self, name: &str) -> Option<&str> {
        in_file(&self.fixed, name)
            .or_else(|| self.process.get(name).map(String::as_str))
            .or_else(|| in_file(&self.service, name))
            .or_else(|| in_file(&self.project, name))
    }

    /// `text` with every `${...}` replaced.
    pub fn expand(&self, text: &str) -> Result<String, ExpandError> {
        let mut steps = MAX_SUBSTITUTIONS;
        self.expand_within(text, &mut Vec::new(), &mut steps)
    }

    fn expand_within(&self, text: &str, stack: &mut Vec<String>, steps: &mut usize) -> Result<String, ExpandError> {
        let mut out = String::with_capacity(text.len());
        let mut rest = text;
        while let Some(at) = rest.find('$') {
            out.push_str(&rest[..at]);
            let after = &rest[at..];
            if let Some(tail) = after.strip_prefix("$${") {
                out.push_str("${");
                rest = tail;
            } else if let Some(tail) = after.strip_prefix("${") {
                let end = closing_brace(tail).ok_or(ExpandError::Unterminated)?;
                *steps = steps.checked_sub(1).ok_or(ExpandError::TooLarge)?;
                out.push_str(&self.substitute(&tail[..end], stack, steps)?);
                // `}` is one byte: the next one starts a character.
                rest = tail.get(end.saturating_add(1)..).unwrap_or("");
            } else {
                out.push('$');
                rest = &after[1..];
            }
        }
        out.push_str(rest);
        if out.len() > MAX_EXPANDED {
            return Err(ExpandError::TooLarge);
        }
        Ok(out)
    }

    /// One `${...}` body: `NAME`, `NAME:-default` (unset or empty) or `NAME-default`
    /// (unset).
    fn substitute(&self, body: &str, stack: &mut Vec<String>, steps: &mut usize) -> Result<String, ExpandError> {
        if let Some(service) = body.strip_prefix("port:") {
            return match self.ports.get(service.trim()) {
                Some(port) => Ok(port.to_string()),
                None => Err(ExpandError::NoPort(service.trim().to_string())),
            };
        }
        let name_end = body
            .find(|c: char| !(c.is_ascii_alphanumeric() || c == '_'))
            .unwrap_or(body.len());
        let (name, op) = body.split_at(name_end);
        if name.is_empty() || name.starts_with(|c: char| c.is_ascii_digit()) {
            return Err(ExpandError::BadName(body.to_string()));
        }
        let (default, empty_counts) = match op {
            "" => (None, false),
            _ if op.starts_with(":-") => (Some(&op[2..]), true),
            _ if op.starts_with('-') => (Some(&op[1..]), false),
            _ => return Err(ExpandError::BadName(body.to_string())),
        };
        match (self.lookup(name), default) {
            (Some(value), Some(default)) if empty_counts && value.is_empty() => {
                self.expand_within(default, stack, steps)
            }
            (Some(value), _) => {
                if let Some(start) = stack.iter().position(|n| n == name) {
                    let mut cycle: Vec<String> = stack.iter().skip(start).cloned().collect();
                    cycle.push(name.to_string());
                    return Err(ExpandError::Loop(cycle));
                }
                stack.push(name.to_string());
                let expanded = self.expand_within(value, stack, steps);
                stack.pop();
                expanded
            }
            (None, Some(default)) => self.expand_within(default, stack, steps),
            (None, None) => Err(ExpandError::Undefined(name.to_string())),
        }
    }
}

/// The last value of `name` in an env file (a later line overrides an earlier one).
fn in_file<'a>(list: &'a [(String, String)], name: &str) -> Option<&'a str> {
    list.iter().rev().find(|(k, _)| k == name).map(|(_, v)| v.as_str())
}

/// The index of the `}` that closes a `${` whose body starts `tail`, allowing nested
/// `${...}` in defaults.
fn closing_brace(tail: &str) -> Option<usize> {
    let mut depth = 0usize;
    let mut bytes = tail.bytes().enumerate().peekable();
    while let Some((i, byte)) = bytes.next() {
        match byte {
            b'$' if bytes.peek().map(|(_, next)| *next) == Some(b'{') => {
                depth = depth.saturating_add(1);
                bytes.next();
            }
            b'}' if depth == 0 => return Some(i),
            b'}' => depth = depth.saturating_sub(1),
            _ => {}
        }
    }
    None
}

impl fmt::Display for ExpandError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            ExpandError::Undefined(name) => write!(f, "variable `{name}` is not set"),
            ExpandError::Unterminated => f.write_str("`${` is not closed by `}`"),
            ExpandError::BadName(body) => write!(f, "`${{{body}}}` is not `${{NAME}}` or `${{NAME:-default}}`"),
            ExpandError::Loop(cycle) => write!(f, "variable loop: {}", cycle.join(" -> ")),
            ExpandError::NoPort(service) => {
                write!(f, "`${{port:{service}}}`: no service `{service}` declares a `port`")
            }
            ExpandError::TooLarge => write!(
                f,
                "the variables expand to more than {} KiB or {MAX_SUBSTITUTIONS} substitutions",
                MAX_EXPANDED / 1024
            ),
        }
    }
}

/// Why an env_file could not be read.
#[derive(Debug)]
pub enum EnvFileError {
    Unreadable {
        path: PathBuf,
        err: dotenvy::Error,
    },
    /// A value that dotenvy's own substitution would grow past `MAX_EXPANDED` bytes.
    TooLarge {
        path: PathBuf,
        number: usize,
        key: String,
    },
    /// A line that is not `KEY=value`, located.
    Line {
        path: PathBuf,
        number: usize,
        text: String,
        column: usize,
    },
}

impl fmt::Display for EnvFileError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            EnvFileError::Unreadable {
                path,
                err: dotenvy::Error::Io(io),
            } => {
                write!(f, "cannot read env_file {}: {io}", path.display())
            }
            EnvFileError::Unreadable { path, err } => write!(f, "cannot read env_file {}: {err}", path.display()),
            EnvFileError::TooLarge { path, number, key } => write!(
                f,
                "{}:{number}: `{key}` expands to more than {} KiB (its variables name others several times); write it as a plain value",
                path.display(),
                MAX_EXPANDED / 1024
            ),
            EnvFileError::Line {
                path,
                number,
                text,
                column,
            } => write!(
                f,
                "{}:{number}: cannot parse `{text}` at column {column}; write KEY=value",
                path.display()
            ),
        }
    }
}

/// Reads a dotenv file. An error names the file and line.
pub fn read_env_file(path: &Path) -> Result<Vec<(String, String)>, EnvFileError> {
    let unreadable = |err| EnvFileError::Unreadable {
        path: path.to_path_buf(),
        err,
    };
    if let Ok(text) = std::fs::read_to_string(path)
        && let Some((number, key)) = grows_too_large(&text)
    {
        return Err(EnvFileError::TooLarge {
            path: path.to_path_buf(),
            number,
            key,
        });
    }
    let iter = dotenvy::from_path_iter(path).map_err(unreadable)?;
    let mut vars = Vec::new();
    for item in iter {
        match item {
            Ok(pair) => vars.push(pair),
            Err(dotenvy::Error::LineParse(line, column)) => {
                let text = std::fs::read_to_string(path).unwrap_or_default();
                let number = text
                    .lines()
                    .position(|l| l.contains(line.lines().next().unwrap_or(&line)))
                    .map_or(0, |n| n.saturating_add(1));
                return Err(EnvFileError::Line {
                    path: path.to_path_buf(),
                    number,
                    text: line.trim_end().to_string(),
                    column: column.saturating_add(1),
                });
            }
            Err(other) => return Err(unreadable(other)),
        }
    }
    Ok(vars)
}

/// The first line (number and key) whose value dotenvy's substitution (of `$NAME` and
/// `${NAME}` by the environment and the lines above) would make longer than
/// `MAX_EXPANDED`: each line's size is bounded by its text plus the sizes of what it
/// names, so variables that name the previous one twice, forty times over, are caught
/// before dotenvy tries to build terabytes.
fn grows_too_large(text: &str) -> Option<(usize, String)> {
    let reference = regex::Regex::new(r"\$\{?([A-Za-z_][A-Za-z0-9_]*)").ok()?;
    let mut sizes: HashMap<String, usize> = HashMap::new();
    for (index, line) in text.lines().enumerate() {
        let line = line.trim_start().trim_start_matches("export ");
        let Some((key, value)) = line.split_once('=') else {
            continue;
        };
        let size = reference.captures_iter(value).fold(value.len(), |size, caps| {
            let name = &caps[1];
            let named = sizes
                .get(name)
                .copied()
                .or_else(|| std::env::var(name).ok().map(|v| v.len()))
                .unwrap_or(0);
            size.saturating_add(named)
        });
        if size > MAX_EXPANDED {
            return Some((index.saturating_add(1), key.trim().to_string()));
        }
        sizes.insert(key.trim().to_string(), size);
    }
    None
}

#[cfg(test)]
mod tests {
    use super::*;

    fn vars(process: &[(&str, &str)], project: &[(&str, &str)], service: &[(&str, &str)]) -> Vars {
        let own = |l: &[(&str, &str)]| {
            l.iter()
                .map(|(k, v)| (k.to_string(), v.to_string()))
                .collect::<Vec<_>>()
        };
        Vars {
            fixed: Vec::new(),
            ports: Default::default(),
            process: own(process).into_iter().collect(),
            project: own(project),
            service: own(service),
        }
    }

    #[test]
    fn expansion_rows() {
        let v = vars(
            &[
                ("PORT", "9000"),
                ("EMPTY", ""),
                ("A", "${B}"),
                ("B", "${A}"),
                ("SELF", "x${SELF}"),
            ],
            &[("PORT", "1"), ("FILE_ONLY", "project"), ("BOTH", "project")],
            &[("BOTH", "service")],
        );
        let rows: &[(&str, Result<&str, ExpandError>)] = &[
            ("port ${PORT}", Ok("port 9000")),
            ("${FILE_ONLY}", Ok("project")),
            ("${BOTH}", Ok("service")),
            ("${NOPE:-8080}", Ok("8080")),
            ("${EMPTY:-fallback}", Ok("fallback")),
            ("${EMPTY-fallback}", Ok("")),
            ("${NOPE:-${PORT}}", Ok("9000")),
            ("kill $$ and $HOME stay", Ok("kill $$ and $HOME stay")),
            ("$${LITERAL}", Ok("${LITERAL}")),
            ("${NOPE}", Err(ExpandError::Undefined("NOPE".into()))),
            ("${PORT", Err(ExpandError::Unterminated)),
            ("${A}", Err(ExpandError::Loop(vec!["A".into(), "B".into(), "A".into()]))),
            ("${SELF}", Err(ExpandError::Loop(vec!["SELF".into(), "SELF".into()]))),
            ("${1X}", Err(ExpandError::BadName("1X".into()))),
        ];
        for (input, expected) in rows {
            let expected = expected.clone().map(str::to_string);
            assert_eq!(v.expand(input), expected, "for {input:?}");
        }
    }
}
