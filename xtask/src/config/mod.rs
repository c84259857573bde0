//! services.toml: the types, their defaults, validation and the dependency graph.

mod graph;
mod read;
mod vars;

use std::collections::HashMap;
use std::fmt;
use std::path::{Path, PathBuf};
use std::time::Duration;

use nix::sys::signal::Signal;
use toml::Spanned;
use toml::de::DeTable;

pub use graph::Graph;
use read::{Diagnostic, Diagnostics, TableReader};

/// The file name looked for in the workspace root when no path is given.
pub const DEFAULT_FILE: &str = "services.toml";

const DEFAULT_STOP_TIMEOUT: Duration = Duration::from_secs(3);
const DEFAULT_INTERVAL: Duration = Duration::from_secs(1);
const DEFAULT_PROBE_TIMEOUT: Duration = Duration::from_secs(2);
const DEFAULT_RETRIES: u32 = 30;

const TOP_KEYS: &[&str] = &["project", "services"];
const PROJECT_KEYS: &[&str] = &[
    "name",
    "state_dir",
    "stop_timeout",
    "env_file",
    "orphan_patterns",
    "compose_file",
];
const SERVICE_KEYS: &[&str] = &[
    "command",
    "cwd",
    "env",
    "port",
    "ports",
    "depends_on",
    "health",
    "stop_signal",
    "stop_timeout",
    "stop_command",
    "restart",
    "max_restarts",
    "restart_delay",
    "startup_delay",
    "env_file",
    "build",
    "build_timeout",
    "image",
    "volumes",
];
const BUILD_KEYS: &[&str] = &["command", "cwd", "env"];
const HEALTH_KEYS: &[&str] = &[
    "port",
    "http",
    "command",
    "container_command",
    "log",
    "interval",
    "timeout",
    "retries",
    "start_period",
];
const PROBE_KEYS: [&str; 5] = ["port", "http", "command", "container_command", "log"];
const DEFAULT_MAX_RESTARTS: u32 = 5;
const DEFAULT_RESTART_DELAY: Duration = Duration::from_secs(1);

#[derive(Debug, Clone)]
pub struct Config {
    /// The services.toml this was read from.
    pub path: PathBuf,
    /// The canonical directory of `path`: relative paths and the cookie are based on it.
    pub root: PathBuf,
    pub project: Project,
    /// In file order.
    pub services: Vec<Service>,
}

#[derive(Debug, Clone)]
pub struct Project {
    pub name: String,
    /// Absolute.
    pub state_dir: PathBuf,
    pub stop_timeout: Duration,
    /// The values of the project's `env_file`: part of every service's environment and
    /// of the command that `run` runs.
    pub env: Vec<(String, String)>,
    /// A Docker Compose file brought up before the services and down in phase 4.
    pub compose_file: Option<PathBuf>,
    /// The services it declares: `depends_on` may name them.
    pub compose_services: Vec<String>,
    /// Command-line patterns for processes that lost the cookie (a tool that clears its
    /// environment): matched only among this user's processes working inside the project.
    pub orphan_patterns: Vec<regex::Regex>,
}

#[derive(Debug, Clone)]
pub struct Service {
    pub name: String,
    pub command: CommandLine,
    /// Absolute.
    pub cwd: PathBuf,
    pub env: Vec<(String, String)>,
    pub ports: Vec<u16>,
    pub depends_on: Vec<Dependency>,
    /// `None` when the service declares neither `health` nor a port: it counts as healthy
    /// once started.
    pub health: Option<Health>,
    pub stop_signal: Signal,
    pub stop_timeout: Duration,
    /// Run in phase 1 of stop instead of sending `stop_signal`.
    pub stop_command: Option<CommandLine>,
    pub restart: RestartPolicy,
    pub max_restarts: u32,
    /// The first restart's delay; each further one doubles it, up to `MAX_RESTART_DELAY`.
    pub restart_delay: Duration,
    /// How long to wait, once the dependencies are met, before starting.
    pub startup_delay: Duration,
    pub build: Option<Build>,
    /// Bounds the build; `None`: no bound.
    pub build_timeout: Option<Duration>,
    /// Set for a service that runs as a Docker container (`image`).
    pub container: Option<Container>,
}

/// A container service: `docker run` of `image` with these settings.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Container {
    pub image: String,
    /// Arguments after the image (the `command`), if any.
    pub args: Vec<String>,
    /// Published ports: (host, container).
    pub ports: Vec<(u16, u16)>,
    /// `-v` values; a relative host path is taken from the project root.
    pub volumes: Vec<String>,
}

/// A service's build step, run before it starts.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Build {
    pub command: CommandLine,
    /// Absolute.
    pub cwd: PathBuf,
    pub env: Vec<(String, String)>,
}

/// One entry of `depends_on`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Dependency {
    pub service: String,
    pub condition: Condition,
}

/// When a dependency counts as met, as in Docker Compose's `depends_on` conditions.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Condition {
    /// Its process was started.
    Started,
    /// It passed its health check (or, without one, started). The default.
    Healthy,
    /// It ran to completion with exit code 0 (a one-shot job such as a migration).
    Completed,
}

/// What the supervisor does when a service's main process exits.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RestartPolicy {
    No,
    OnFailure,
    Always,
}

/// A command as the user wrote it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum CommandLine {
    /// A string: run through `sh -c`.
    Shell(String),
    /// An array: run directly, no shell.
    Exec(Vec<String>),
}

#[derive(Debug, Clone)]
pub struct Health {
    pub probe: Probe,
    /// Longest pause between two probes (probes start a few ms apart and back off to this).
    pub interval: Duration,
    /// How long one probe may take.
    pub timeout: Duration,
    /// With `interval`, bounds the wait for readiness: `start_period + retries * interval`.
    pub retries: u32,
    pub start_period: Duration,
}

#[derive(Debug, Clone)]
pub enum Probe {
    /// A TCP connect to 127.0.0.1.
    Port(u16),
    /// A GET answered with a status below 400.
    Http(String),
    /// A command that exits 0, run in the project root.
    Command(CommandLine),
    /// A line of the service's log (written since it started) matches.
    Log(regex::Regex),
    /// A command that exits 0 inside the service's container (`docker exec`).
    ContainerCommand(CommandLine),
}

impl PartialEq for Probe {
    fn eq(&self, other: &Probe) -> bool {
        match (self, other) {
            (Probe::Port(a), Probe::Port(b)) => a == b,
            (Probe::Http(a), Probe::Http(b)) => a == b,
            (Probe::Command(a), Probe::Command(b)) => a == b,
            (Probe::Log(a), Probe::Log(b)) => a.as_str() == b.as_str(),
            (Probe::ContainerCommand(a), Probe::ContainerCommand(b)) => a == b,
            _ => false,
        }
    }
}

/// Every problem found in one config file, rendered with locations.
#[derive(Debug)]
pub struct ConfigError {
    pub path: PathBuf,
    source_text: String,
    pub diagnostics: Vec<Diagnostic>,
}

impl Config {
    /// Reads and validates the file at `path`.
    pub fn load(path: &Path) -> Result<Config, ConfigError> {
        let text = std::fs::read_to_string(path).map_err(|err| ConfigError::io(path, &err))?;
        let root = path
            .parent()
            .map(|p| if p.as_os_str().is_empty() { Path::new(".") } else { p })
            .and_then(|p| p.canonicalize().ok())
            .ok_or_else(|| ConfigError::message(path, "cannot resolve the directory of the config file"))?;
        Self::parse(path, &root, &text)
    }

    /// Parses `text` as if read from `path`, with `root` as the project root.
    pub fn parse(path: &Path, root: &Path, text: &str) -> Result<Config, ConfigError> {
        let mut diags = Diagnostics {
            items: Vec::new(),
            vars: vars::Vars::from_process(),
        };
        let config = match DeTable::parse(text) {
            Ok(table) => parse_document(table.get_ref(), path, root, &mut diags),
            Err(err) => {
                let span = err.span().unwrap_or(0..0);
                diags.error_with_help(
                    span,
                    format!("invalid TOML: {}", err.message().trim_end()),
                    "fix the syntax; see https://toml.io for the format",
                );
                None
            }
        };
        match config {
            Some(config) if diags.items.is_empty() => Ok(config),
            _ => {
                let mut diagnostics = diags.items;
                diagnostics.sort_by_key(|d| d.span.start);
                Err(ConfigError {
                    path: path.to_path_buf(),
                    source_text: text.to_string(),
                    diagnostics,
                })
            }
        }
    }

    pub fn service(&self, name: &str) -> Option<&Service> {
        self.services.iter().find(|s| s.name == name)
    }

    pub fn graph(&self) -> Graph<'_> {
        Graph::new(&self.services)
    }

    /// The service closest in spelling to `name`, for "did you mean" hints.
    pub fn suggest(&self, name: &str) -> Option<&str> {
        read::suggest(name, self.services.iter().map(|s| s.name.as_str()))
    }
}

fn parse_document(doc: &DeTable<'_>, path: &Path, root: &Path, diags: &mut Diagnostics) -> Option<Config> {
    let top = TableReader::new(doc, "services.toml", TOP_KEYS);
    top.report_unknown(diags);
    let project = parse_project(top.get("project"), root, diags);
    let mut services = Vec::new();
    match top.get("services") {
        None => diags.error_with_help(
            0..0,
            "no services are declared",
            "add a table such as [services.api] with a `command`",
        ),
        Some(value) => {
            if let Some(table) = read::as_table(value, "`services`", diags) {
                for (name, value) in table {
                    if let Some(service) = parse_service(name, value, project.as_ref(), root, diags) {
                        services.push(service);
                    }
                }
            }
        }
    }
    validate_ports(&services, diags);
    let compose = project.as_ref().map(|p| p.compose_services.clone()).unwrap_or_default();
    validate_dependencies(&services, &compose, diags);
    Some(Config {
        path: path.to_path_buf(),
        root: root.to_path_buf(),
        project: project?,
        services: services.into_iter().map(|s| s.service).collect(),
    })
}

/// A service together with the spans that the cross-service checks point at.
struct ParsedService {
    service: Service,
    port_spans: Vec<std::ops::Range<usize>>,
    dependency_spans: Vec<std::ops::Range<usize>>,
    name_span: std::ops::Range<usize>,
}

fn parse_project(value: Option<&read::Value<'_>>, root: &Path, diags: &mut Diagnostics) -> Option<Project> {
    let default_name = root
        .file_name()
        .map_or_else(|| "project".to_string(), |n| n.to_string_lossy().into_owned());
    let mut project = Project {
        name: default_name,
        state_dir: root.join(".xtask"),
        stop_timeout: DEFAULT_STOP_TIMEOUT,
        env: Vec::new(),
        orphan_patterns: Vec::new(),
        compose_file: None,
        compose_services: Vec::new(),
    };
    let Some(value) = value else {
        return Some(project);
    };
    let table = read::as_table(value, "`project`", diags)?;
    let reader = TableReader::new(table, "[project]", PROJECT_KEYS);
    reader.report_unknown(diags);
    // Read first: the other values may name its variables.
    project.env = read_env_files(&reader, root, diags);
    diags.vars.set_project_file(project.env.clone());
    if let Some(name) = reader.string("name", diags) {
        project.name = name.into_inner();
    }
    if let Some(dir) = reader.string("state_dir", diags) {
        if dir.get_ref().trim().is_empty() {
            diags.error(dir.span(), "`state_dir` in [project] must not be empty");
        } else {
            project.state_dir = root.join(dir.get_ref());
        }
    }
    if let Some(timeout) = reader.duration("stop_timeout", diags) {
        project.stop_timeout = timeout.into_inner();
    }
    if let Some(file) = reader.string("compose_file", diags) {
        let path = root.join(file.get_ref());
        if path.is_file() {
            let text = std::fs::read_to_string(&path).unwrap_or_default();
            project.compose_services = crate::container::compose_services(&text);
            project.compose_file = Some(path);
        } else {
            diags.error_with_help(
                file.span(),
                format!("compose_file {} does not exist", path.display()),
                "fix the path",
            );
        }
    }
    if let Some(value) = reader.get("orphan_patterns") {
        for pattern in read::as_string_list(value, &reader.what("orphan_patterns"), diags).unwrap_or_default() {
            match regex::Regex::new(pattern.get_ref()) {
                Ok(re) => project.orphan_patterns.push(re),
                Err(err) => diags.error_with_help(
                    pattern.span(),
                    "this `orphan_patterns` entry is not a valid regular expression",
                    err.to_string().lines().last().unwrap_or("").trim().to_string(),
                ),
            }
        }
    }
    Some(project)
}

fn parse_service(
    name: &Spanned<std::borrow::Cow<'_, str>>,
    value: &read::Value<'_>,
    project: Option<&Project>,
    root: &Path,
    diags: &mut Diagnostics,
) -> Option<ParsedService> {
    let context = format!("[services.{}]", name.get_ref());
    if !valid_service_name(name.get_ref()) {
        diags.error_with_help(
            name.span(),
            format!("invalid service name `{}`", name.get_ref()),
            "use letters, digits, `-` and `_` only: the name is used in file names",
        );
    }
    let table = read::as_table(value, &format!("`services.{}`", name.get_ref()), diags)?;
    let reader = TableReader::new(table, context.clone(), SERVICE_KEYS);
    reader.report_unknown(diags);
    // Read first: the other values may name its variables.
    let service_file = read_env_files(&reader, root, diags);
    diags.vars.set_service_file(service_file);

    // A missing or bad command is reported; the service still takes part in the
    // cross-service checks so that their problems are reported in the same run.
    let image = reader.string("image", diags);
    let command = match reader.get("command") {
        Some(value) => parse_command(value, &reader.what("command"), diags),
        None if image.is_some() => Some(CommandLine::Exec(Vec::new())),
        None => {
            diags.error_with_help(
                name.span(),
                format!("{context} has no `command`"),
                "add `command = \"...\"` (run by sh -c) or `command = [\"program\", \"arg\"]`",
            );
            None
        }
    }
    .unwrap_or(CommandLine::Exec(Vec::new()));
    let cwd = reader
        .string("cwd", diags)
        .map_or_else(|| root.to_path_buf(), |c| root.join(c.get_ref()));
    // The service's environment: the project's env_file, its own, then `env`.
    let mut env: Vec<(String, String)> = diags.vars.project_file().to_vec();
    env.extend(diags.vars.service_file().iter().cloned());
    env.extend(parse_env(reader.get("env"), &reader.what("env"), diags));
    let (mapped_ports, port_spans) = parse_ports(&reader, diags);
    let ports: Vec<u16> = mapped_ports.iter().map(|(host, _)| *host).collect();
    let (depends_on, dependency_spans) = match reader.get("depends_on") {
        Some(value) => parse_dependencies(value, &reader.what("depends_on"), diags),
        None => (Vec::new(), Vec::new()),
    };
    let health = match reader.get("health") {
        Some(value) => parse_health(value, &context, diags),
        None => ports
            .first()
            .map(|&port| Some(Health::default_for(Probe::Port(port))))
            .unwrap_or(None),
    };
    let stop_signal = reader
        .string("stop_signal", diags)
        .and_then(|s| parse_signal(&s, &reader.what("stop_signal"), diags));
    let stop_timeout = reader.duration("stop_timeout", diags).map(Spanned::into_inner);
    let stop_command = reader
        .get("stop_command")
        .and_then(|v| parse_command(v, &reader.what("stop_command"), diags));
    let restart = reader
        .string("restart", diags)
        .and_then(|r| parse_policy(&r, &reader.what("restart"), diags));
    let max_restarts = reader.get("max_restarts").and_then(|v| {
        match read::as_integer(v, &reader.what("max_restarts"), diags).map(u32::try_from) {
            Some(Ok(n)) => Some(n),
            Some(Err(_)) => {
                diags.error(
                    v.span(),
                    format!("{} must be a whole number from 0", reader.what("max_restarts")),
                );
                None
            }
            None => None,
        }
    });
    let restart_delay = reader.duration("restart_delay", diags).map(Spanned::into_inner);
    let startup_delay = reader.duration("startup_delay", diags).map(Spanned::into_inner);
    let build = reader
        .get("build")
        .and_then(|v| parse_build(v, &context, &cwd, &env, root, diags));
    let build_timeout = reader.duration("build_timeout", diags).map(Spanned::into_inner);
    let container = match image {
        Some(image) => Some(Container {
            image: image.into_inner(),
            args: match &command {
                CommandLine::Exec(words) => words.clone(),
                CommandLine::Shell(line) => line.split_whitespace().map(str::to_string).collect(),
            },
            ports: mapped_ports.clone(),
            volumes: reader
                .get("volumes")
                .and_then(|v| read::as_string_list(v, &reader.what("volumes"), diags))
                .unwrap_or_default()
                .into_iter()
                .map(|v| volume_spec(v.get_ref(), root))
                .collect(),
        }),
        None => {
            if let Some(v) = reader.get("volumes") {
                diags.error_with_help(
                    v.span(),
                    format!("{} needs `image`", reader.what("volumes")),
                    "only container services mount volumes",
                );
            }
            for (port, span) in mapped_ports.iter().zip(&port_spans) {
                if port.0 != port.1 {
                    diags.error_with_help(
                        span.clone(),
                        format!("{}: a port mapping needs `image`", reader.what("ports")),
                        "a process service declares the port it listens on: `port = 8080`",
                    );
                }
            }
            None
        }
    };
    let project_timeout = project.map_or(DEFAULT_STOP_TIMEOUT, |p| p.stop_timeout);
    Some(ParsedService {
        service: Service {
            name: name.get_ref().to_string(),
            command,
            cwd,
            env,
            ports,
            depends_on,
            health,
            stop_signal: stop_signal.unwrap_or(Signal::SIGTERM),
            stop_timeout: stop_timeout.unwrap_or(project_timeout),
            stop_command,
            restart: restart.unwrap_or(RestartPolicy::No),
            max_restarts: max_restarts.unwrap_or(DEFAULT_MAX_RESTARTS),
            restart_delay: restart_delay.unwrap_or(DEFAULT_RESTART_DELAY),
            startup_delay: startup_delay.unwrap_or(Duration::ZERO),
            build,
            build_timeout,
            container,
        },
        port_spans,
        dependency_spans,
        name_span: name.span(),
    })
}

fn valid_service_name(name: &str) -> bool {
    !name.is_empty() && name.chars().all(|c| c.is_ascii_alphanumeric() || c == '-' || c == '_')
}

fn parse_command(value: &read::Value<'_>, what: &str, diags: &mut Diagnostics) -> Option<CommandLine> {
    use toml::de::DeValue;
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
            let words = read::as_string_list(value, what, diags)?;
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
                    read::type_name(other)
                ),
            );
            None
        }
    }
}

fn parse_env(value: Option<&read::Value<'_>>, what: &str, diags: &mut Diagnostics) -> Vec<(String, String)> {
    let Some(value) = value else { return Vec::new() };
    let Some(table) = read::as_table(value, what, diags) else {
        return Vec::new();
    };
    let mut env = Vec::new();
    for (key, value) in table {
        let what = format!("`{}` of {what}", key.get_ref());
        if key.get_ref().is_empty() || key.get_ref().contains('=') {
            diags.error(
                key.span(),
                format!("{what}: a variable name must not be empty or contain `=`"),
            );
            continue;
        }
        if let Some(value) = read::as_env_value(value, &what, diags) {
            env.push((key.get_ref().to_string(), value));
        }
    }
    env
}

/// `env_file = ".env"` or a list of files, relative to the project root, read in order.
fn read_env_files(reader: &TableReader<'_, '_>, root: &Path, diags: &mut Diagnostics) -> Vec<(String, String)> {
    let Some(value) = reader.get("env_file") else {
        return Vec::new();
    };
    let what = reader.what("env_file");
    let files = match value.get_ref() {
        toml::de::DeValue::String(_) => read::as_string(value, &what, diags).into_iter().collect(),
        _ => read::as_string_list(value, &what, diags).unwrap_or_default(),
    };
    let mut vars = Vec::new();
    for file in files {
        match vars::read_env_file(&root.join(file.get_ref())) {
            Ok(found) => vars.extend(found),
            Err(message) => diags.error_with_help(file.span(), message, "fix the file or the path in `env_file`"),
        }
    }
    vars
}

/// `build = "..."`/`[...]` (in the service's `cwd`, with its environment), or a table
/// with its own `command`, `cwd` and `env`.
fn parse_build(
    value: &read::Value<'_>,
    context: &str,
    service_cwd: &Path,
    service_env: &[(String, String)],
    root: &Path,
    diags: &mut Diagnostics,
) -> Option<Build> {
    let what = format!("`build` in {context}");
    let toml::de::DeValue::Table(table) = value.get_ref() else {
        let command = parse_command(value, &what, diags)?;
        return Some(Build {
            command,
            cwd: service_cwd.to_path_buf(),
            env: service_env.to_vec(),
        });
    };
    let reader = TableReader::new(table, format!("the build of {context}"), BUILD_KEYS);
    reader.report_unknown(diags);
    let Some(command) = reader.get("command") else {
        diags.error_with_help(
            value.span(),
            format!("{what} has no `command`"),
            "add `command = \"cargo build\"`",
        );
        return None;
    };
    let command = parse_command(command, &reader.what("command"), diags)?;
    let cwd = reader
        .string("cwd", diags)
        .map_or_else(|| service_cwd.to_path_buf(), |c| root.join(c.get_ref()));
    let mut env = service_env.to_vec();
    env.extend(parse_env(reader.get("env"), &reader.what("env"), diags));
    Some(Build { command, cwd, env })
}

/// `port = N` and `ports = [N, "HOST:CONTAINER"]`: (host, container) pairs, the host
/// port being the one checked free before start and freed after stop.
fn parse_ports(
    reader: &TableReader<'_, '_>,
    diags: &mut Diagnostics,
) -> (Vec<(u16, u16)>, Vec<std::ops::Range<usize>>) {
    let mut mapped = Vec::new();
    let mut spans = Vec::new();
    if let Some(port) = reader.port("port", diags) {
        spans.push(port.span());
        mapped.push((*port.get_ref(), port.into_inner()));
    }
    if let Some(value) = reader.get("ports") {
        match value.get_ref() {
            toml::de::DeValue::Array(items) => {
                let what = format!("each item of {}", reader.what("ports"));
                for item in items {
                    if let Some(pair) = port_mapping(item, &what, diags) {
                        spans.push(item.span());
                        mapped.push(pair);
                    }
                }
            }
            other => diags.error(
                value.span(),
                format!(
                    "{} must be an array of ports, found {}",
                    reader.what("ports"),
                    read::type_name(other)
                ),
            ),
        }
    }
    (mapped, spans)
}

/// `8080`, `"8080"` or `"6380:6379"` (host:container).
fn port_mapping(item: &read::Value<'_>, what: &str, diags: &mut Diagnostics) -> Option<(u16, u16)> {
    if let toml::de::DeValue::String(text) = item.get_ref() {
        let text = diags.expand(text, item.span(), what)?;
        if let Some((host, container)) = text.split_once(':') {
            let (Ok(host), Ok(container)) = (host.trim().parse::<u16>(), container.trim().parse::<u16>()) else {
                diags.error_with_help(
                    item.span(),
                    format!("{what}: `{text}` is not HOST:CONTAINER"),
                    "write \"6380:6379\"",
                );
                return None;
            };
            return Some((host, container));
        }
    }
    read::as_port(item, what, diags).map(|p| (*p.get_ref(), p.into_inner()))
}

/// A `-v` value with a relative host path made absolute; named volumes stay as named.
fn volume_spec(spec: &str, root: &Path) -> String {
    match spec.split_once(':') {
        Some((host, rest)) if host.starts_with('.') || host.contains('/') => {
            format!("{}:{rest}", root.join(host).display())
        }
        _ => spec.to_string(),
    }
}

fn parse_health(value: &read::Value<'_>, context: &str, diags: &mut Diagnostics) -> Option<Health> {
    let what = format!("`health` in {context}");
    let table = read::as_table(value, &what, diags)?;
    let reader = TableReader::new(table, format!("the health of {context}"), HEALTH_KEYS);
    reader.report_unknown(diags);
    let mut probes = Vec::new();
    if let Some(port) = reader.port("port", diags) {
        probes.push(Probe::Port(port.into_inner()));
    }
    if let Some(url) = reader.string("http", diags) {
        if url.get_ref().starts_with("http://") {
            probes.push(Probe::Http(url.into_inner()));
        } else {
            diags.error_with_help(
                url.span(),
                format!("{} must be an http:// URL", reader.what("http")),
                "write the full URL, such as \"http://127.0.0.1:8080/health\"",
            );
        }
    }
    if let Some(command) = reader.get("command")
        && let Some(command) = parse_command(command, &reader.what("command"), diags)
    {
        probes.push(Probe::Command(command));
    }
    if let Some(command) = reader.get("container_command")
        && let Some(command) = parse_command(command, &reader.what("container_command"), diags)
    {
        probes.push(Probe::ContainerCommand(command));
    }
    if let Some(pattern) = reader.string("log", diags) {
        match regex::Regex::new(pattern.get_ref()) {
            Ok(re) => probes.push(Probe::Log(re)),
            Err(err) => diags.error_with_help(
                pattern.span(),
                format!("{} is not a valid regular expression", reader.what("log")),
                err.to_string().lines().last().unwrap_or("").trim().to_string(),
            ),
        }
    }
    let mut health = Health::default_for(Probe::Port(0));
    if let Some(interval) = reader.duration("interval", diags) {
        if interval.get_ref().is_zero() {
            diags.error(
                interval.span(),
                format!("{} must be more than zero", reader.what("interval")),
            );
        }
        health.interval = interval.into_inner();
    }
    if let Some(timeout) = reader.duration("timeout", diags) {
        if timeout.get_ref().is_zero() {
            diags.error(
                timeout.span(),
                format!("{} must be more than zero", reader.what("timeout")),
            );
        }
        health.timeout = timeout.into_inner();
    }
    if let Some(retries) = reader.get("retries") {
        match read::as_integer(retries, &reader.what("retries"), diags).map(u32::try_from) {
            Some(Ok(n)) if n > 0 => health.retries = n,
            Some(_) => diags.error(
                retries.span(),
                format!("{} must be a whole number from 1", reader.what("retries")),
            ),
            None => {}
        }
    }
    if let Some(period) = reader.duration("start_period", diags) {
        health.start_period = period.into_inner();
    }
    health.probe = match probes.len() {
        1 => probes.pop()?,
        0 => {
            // A bad value already has its own diagnostic; only report a missing probe
            // when the table really names none.
            if !PROBE_KEYS.iter().any(|k| table.contains_key(*k)) {
                diags.error_with_help(
                    value.span(),
                    format!("{what} names no probe"),
                    "add one of `port = 8080`, `http = \"http://127.0.0.1:8080/health\"`, `command = \"...\"`, `container_command = \"...\"` or `log = \"REGEX\"`",
                );
            }
            return None;
        }
        _ => {
            diags.error_with_help(
                value.span(),
                format!("{what} names more than one probe"),
                "keep one of `port`, `http`, `command` and `log`",
            );
            return None;
        }
    };
    Some(health)
}

/// `depends_on = ["db"]` (each healthy) or `depends_on = { db = "healthy", migrate = "completed" }`.
fn parse_dependencies(
    value: &read::Value<'_>,
    what: &str,
    diags: &mut Diagnostics,
) -> (Vec<Dependency>, Vec<std::ops::Range<usize>>) {
    let mut deps = Vec::new();
    let mut spans = Vec::new();
    match value.get_ref() {
        toml::de::DeValue::Table(table) => {
            for (name, condition) in table {
                let Some(text) = read::as_string(
                    condition,
                    &format!("the condition of `{}` in {what}", name.get_ref()),
                    diags,
                ) else {
                    continue;
                };
                let condition = match text.get_ref().as_str() {
                    "started" => Condition::Started,
                    "healthy" => Condition::Healthy,
                    "completed" => Condition::Completed,
                    other => {
                        diags.error_with_help(
                            text.span(),
                            format!("`{other}` is not a dependency condition"),
                            "use \"started\", \"healthy\" or \"completed\"",
                        );
                        continue;
                    }
                };
                deps.push(Dependency {
                    service: name.get_ref().to_string(),
                    condition,
                });
                spans.push(name.span());
            }
        }
        _ => {
            for name in read::as_string_list(value, what, diags).unwrap_or_default() {
                spans.push(name.span());
                deps.push(Dependency {
                    service: name.into_inner(),
                    condition: Condition::Healthy,
                });
            }
        }
    }
    (deps, spans)
}

fn parse_policy(text: &Spanned<String>, what: &str, diags: &mut Diagnostics) -> Option<RestartPolicy> {
    match text.get_ref().as_str() {
        "no" => Some(RestartPolicy::No),
        "on-failure" => Some(RestartPolicy::OnFailure),
        "always" => Some(RestartPolicy::Always),
        other => {
            diags.error_with_help(
                text.span(),
                format!("{what}: `{other}` is not a restart policy"),
                "use \"no\", \"on-failure\" or \"always\"",
            );
            None
        }
    }
}

fn parse_signal(name: &Spanned<String>, what: &str, diags: &mut Diagnostics) -> Option<Signal> {
    let text = name.get_ref().trim().to_ascii_uppercase();
    let full = if text.starts_with("SIG") {
        text
    } else {
        format!("SIG{text}")
    };
    match full.parse::<Signal>() {
        Ok(signal) => Some(signal),
        Err(_) => {
            diags.error_with_help(
                name.span(),
                format!("{what}: `{}` is not a signal", name.get_ref()),
                "use a name such as \"SIGTERM\", \"SIGINT\" or \"SIGQUIT\"",
            );
            None
        }
    }
}

fn validate_ports(services: &[ParsedService], diags: &mut Diagnostics) {
    let mut owners: HashMap<u16, &str> = HashMap::new();
    for parsed in services {
        for (port, span) in parsed.service.ports.iter().zip(&parsed.port_spans) {
            match owners.get(port) {
                Some(owner) => diags.error_with_help(
                    span.clone(),
                    format!(
                        "port {port} of service `{}` is already declared by service `{owner}`",
                        parsed.service.name
                    ),
                    "give each service its own port",
                ),
                None => {
                    owners.insert(*port, &parsed.service.name);
                }
            }
        }
    }
}

fn validate_dependencies(services: &[ParsedService], compose: &[String], diags: &mut Diagnostics) {
    let mut names: Vec<&str> = services.iter().map(|s| s.service.name.as_str()).collect();
    names.extend(compose.iter().map(String::as_str));
    let mut graph_ok = true;
    for parsed in services {
        for (dep, span) in parsed.service.depends_on.iter().zip(&parsed.dependency_spans) {
            let dep = &dep.service;
            if names.contains(&dep.as_str()) {
                continue;
            }
            graph_ok = false;
            let message = format!("service `{}` depends on unknown service `{dep}`", parsed.service.name);
            match read::suggest(dep, names.iter().copied()) {
                Some(close) => diags.error_with_help(span.clone(), message, format!("did you mean `{close}`?")),
                None => diags.error_with_help(
                    span.clone(),
                    message,
                    format!("declared services are: {}", names.join(", ")),
                ),
            }
        }
    }
    if !graph_ok {
        return;
    }
    let plain: Vec<Service> = services.iter().map(|s| s.service.clone()).collect();
    if let Some(cycle) = Graph::new(&plain).find_cycle() {
        let first = &cycle[0];
        let span = services
            .iter()
            .find(|s| &s.service.name == first)
            .map_or(0..0, |s| s.name_span.clone());
        diags.error_with_help(
            span,
            format!("dependency cycle: {}", cycle.join(" -> ")),
            "remove one of these `depends_on` entries",
        );
    }
}

impl Service {
    /// The dependencies' names.
    pub fn dependency_names(&self) -> impl Iterator<Item = &str> {
        self.depends_on.iter().map(|d| d.service.as_str())
    }
}

impl Health {
    fn default_for(probe: Probe) -> Health {
        Health {
            probe,
            interval: DEFAULT_INTERVAL,
            timeout: DEFAULT_PROBE_TIMEOUT,
            retries: DEFAULT_RETRIES,
            start_period: Duration::ZERO,
        }
    }

    /// How long a starting service may take to become healthy.
    pub fn startup_deadline(&self) -> Duration {
        self.start_period + self.interval * self.retries
    }
}

impl fmt::Display for CommandLine {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            CommandLine::Shell(s) => f.write_str(s),
            CommandLine::Exec(words) => f.write_str(&words.join(" ")),
        }
    }
}

impl fmt::Display for Probe {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Probe::Port(port) => write!(f, "port {port}"),
            Probe::Http(url) => write!(f, "GET {url}"),
            Probe::Command(command) => write!(f, "`{command}`"),
            Probe::Log(re) => write!(f, "a log line matching /{re}/"),
            Probe::ContainerCommand(command) => write!(f, "`{command}` in the container"),
        }
    }
}

impl ConfigError {
    fn io(path: &Path, err: &std::io::Error) -> ConfigError {
        let hint = if err.kind() == std::io::ErrorKind::NotFound {
            "; create it, or point --config or XTASK_CONFIG at one"
        } else {
            ""
        };
        Self::message(path, &format!("cannot read the config file: {err}{hint}"))
    }

    fn message(path: &Path, message: &str) -> ConfigError {
        ConfigError {
            path: path.to_path_buf(),
            source_text: String::new(),
            diagnostics: vec![Diagnostic {
                span: 0..0,
                message: message.to_string(),
                help: None,
            }],
        }
    }
}

impl fmt::Display for ConfigError {
    /// Each problem as `file:line:column: message`, then the source line with a caret
    /// under the offending text and the hint, as rustc does.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let path = self.path.display();
        if self.diagnostics.len() > 1 {
            writeln!(f, "{path} has {} problems:", self.diagnostics.len())?;
        }
        for (i, diag) in self.diagnostics.iter().enumerate() {
            if i > 0 {
                write!(f, "\n\n")?;
            }
            if self.source_text.is_empty() {
                write!(f, "{path}: {}", diag.message)?;
                continue;
            }
            let (line, column) = read::line_col(&self.source_text, diag.span.start);
            write!(f, "{path}:{line}:{column}: {}", diag.message)?;
            let text = self.source_text.lines().nth(line - 1).unwrap_or("");
            let width = self.source_text[diag.span.clone()]
                .lines()
                .next()
                .map_or(1, |l| l.chars().count().max(1));
            let gutter = " ".repeat(line.to_string().len());
            write!(
                f,
                "\n{gutter} |\n{line} | {text}\n{gutter} | {}{}",
                " ".repeat(column - 1),
                "^".repeat(width)
            )?;
            if let Some(help) = &diag.help {
                write!(f, " {help}")?;
            }
        }
        Ok(())
    }
}

impl std::error::Error for ConfigError {}
