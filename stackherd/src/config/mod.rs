//! services.toml: the types and their defaults; `Config::load` reads, checks and
//! reports every problem at once.

mod compose;
mod diagnostic;
mod document;
mod fingerprint;
#[cfg(test)]
mod for_test;
mod graph;
mod health;
mod load;
mod policies;
mod profiles;
mod read;
mod replicas;
mod rotation;
mod service;
mod sources;
mod vars;
mod watch;

use std::fmt;
use std::path::{Path, PathBuf};
use std::time::Duration;

use nix::sys::signal::Signal;

pub use diagnostic::ConfigError;
pub use fingerprint::{Changes, Fingerprint};
pub use graph::Graph;
use load::root_of;
pub use rotation::LogRotation;
pub use sources::Sources;
pub use watch::{Watch, is_glob};

/// The file name looked for in the workspace root when no path is given.
pub const DEFAULT_FILE: &str = "services.toml";

/// The nearest `DEFAULT_FILE` in `dir` or one of its parents: the project a command
/// run there is about.
pub fn nearest(dir: &Path) -> Option<PathBuf> {
    dir.ancestors()
        .map(|d| d.join(DEFAULT_FILE))
        .find(|candidate| candidate.is_file())
}

/// How a layer that can run the compose tool names a compose file's services
/// (`docker compose config --services`), given the file and the state directory
/// (where the names may be cached); `None` when it cannot.
pub type ComposeNames = fn(&Path, &Path) -> Option<Vec<String>>;

/// How a layer that knows the state directory reads the ports chosen for services with
/// `port = "auto"` (service → port), given the state directory.
pub type ChosenPorts = fn(&Path) -> std::collections::BTreeMap<String, u16>;

/// What config loading asks of the layers above it.
#[derive(Debug, Clone, Copy, Default)]
pub struct Hooks {
    pub compose_names: Option<ComposeNames>,
    pub chosen_ports: Option<ChosenPorts>,
}

/// The longest duration xtask accepts, in services.toml and on the command line: a
/// grace period or a start-up budget longer than a day is a typo, and the clock
/// arithmetic of one that is far longer would overflow.
pub const MAX_DURATION: Duration = Duration::from_secs(24 * 60 * 60);

/// A duration from the command line (`--timeout`): humantime's syntax, at most
/// `MAX_DURATION`.
pub fn parse_cli_duration(text: &str) -> Result<Duration, String> {
    let duration = humantime::parse_duration(text).map_err(|err| err.to_string())?;
    if duration > MAX_DURATION {
        return Err("longer than 24h, the longest duration xtask accepts".to_string());
    }
    Ok(duration)
}

const DEFAULT_STOP_TIMEOUT: Duration = Duration::from_secs(3);
const DEFAULT_INTERVAL: Duration = Duration::from_secs(1);
/// The pause between liveness probes of a healthy service whose `interval` is not
/// written. Start-up probing backs off to `interval` (1 s) to see readiness soon; once
/// healthy, a probe each second of every service is the supervisor's whole idle cost
/// (a command probe is a process spawned, an http one a connection and a request),
/// for a hang that `retries` probes must confirm anyway. Docker checks every 30 s,
/// Kubernetes and process-compose every 10 s.
const DEFAULT_LIVENESS_INTERVAL: Duration = Duration::from_secs(5);
const DEFAULT_PROBE_TIMEOUT: Duration = Duration::from_secs(2);
const DEFAULT_RETRIES: u32 = 30;

pub const TOP_KEYS: &[&str] = &["project", "services"];
pub const PROJECT_KEYS: &[&str] = &[
    "name",
    "state_dir",
    "stop_timeout",
    "env_file",
    "env",
    "orphan_patterns",
    "compose_file",
    "abort_on_failure",
    "watch_debounce",
    "log_max_size",
    "log_keep",
    "tty",
];
pub const SERVICE_KEYS: &[&str] = &[
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
    "restart_window",
    "success_exit_codes",
    "startup_delay",
    "pid_file",
    "env_file",
    "build",
    "build_timeout",
    "image",
    "volumes",
    "watch",
    "watch_ignore",
    "restart_with",
    "log_max_size",
    "log_keep",
    "tty",
    "profiles",
    "disabled",
    "replicas",
];
pub const BUILD_KEYS: &[&str] = &["command", "cwd", "env"];
pub const DEPENDENCY_KEYS: &[&str] = &["condition", "restart"];
pub const HEALTH_KEYS: &[&str] = &[
    "port",
    "http",
    "command",
    "container_command",
    "log",
    "interval",
    "interval_healthy",
    "timeout",
    "retries",
    "start_period",
];
const PROBE_KEYS: [&str; 5] = ["port", "http", "command", "container_command", "log"];
const DEFAULT_MAX_RESTARTS: u32 = 5;
const DEFAULT_RESTART_DELAY: Duration = Duration::from_secs(1);
const DEFAULT_RESTART_WINDOW: Duration = Duration::from_secs(60);
const DEFAULT_WATCH_DEBOUNCE: Duration = Duration::from_millis(200);

#[derive(Debug, Clone)]
pub struct Config {
    /// The services.toml this was read from (the first file given).
    pub path: PathBuf,
    /// The files given (`--config`, `XTASK_CONFIG`), for the commands xtask runs itself;
    /// a lone file's `.local.toml` sibling is found again by them.
    pub given: Vec<PathBuf>,
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
    /// The values of the project's `env_file`, then its `env`: part of every service's
    /// environment (a service's own `env_file` and `env` override them) and of the
    /// command that `run` runs.
    pub env: Vec<(String, String)>,
    /// A Docker Compose file brought up before the services and down in phase 4.
    pub compose_file: Option<PathBuf>,
    /// The services it declares: `depends_on` may name them.
    pub compose_services: Vec<String>,
    /// Command-line patterns for processes that lost the cookie (a tool that clears its
    /// environment): matched only among this user's processes working inside the project.
    pub orphan_patterns: Vec<regex::Regex>,
    /// A foreground `start` stops everything and exits 1 when a service fails for good.
    pub abort_on_failure: bool,
    /// How long watched files must be quiet before a change rebuilds.
    pub watch_debounce: Duration,
    /// The services' log rotation, unless one sets its own; `None`: logs grow.
    pub log_rotation: LogRotation,
    /// Every service gets a terminal unless it says otherwise.
    pub tty: bool,
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
    /// `None`: `max_restarts = "unlimited"`.
    pub max_restarts: Option<u32>,
    /// The first restart's delay; each further one doubles it, up to `MAX_RESTART_DELAY`.
    pub restart_delay: Duration,
    /// A service that stayed up this long has its restart count (and backoff) reset
    /// when it next ends: systemd's `StartLimitIntervalSec`, supervisord's `startsecs`.
    pub restart_window: Duration,
    /// The exit codes that count as success (default 0): not a failure for
    /// `on-failure`, a completion for a job.
    pub success_exit_codes: Vec<i32>,
    /// How long to wait, once the dependencies are met, before starting.
    pub startup_delay: Duration,
    /// Where a program that forks into the background writes its main PID (systemd's
    /// `PIDFile=`); absolute.
    pub pid_file: Option<PathBuf>,
    pub build: Option<Build>,
    /// Bounds the build; `None`: no bound.
    pub build_timeout: Option<Duration>,
    /// Set for a service that runs as a Docker container (`image`).
    pub container: Option<Container>,
    /// The files whose changes rebuild and restart it.
    pub watch: Option<Watch>,
    /// Restarted after a dependency that a change restarted.
    pub restart_with: bool,
    /// Its log's rotation (the project's where it sets none).
    pub log_rotation: LogRotation,
    /// Its stdout and stderr are a pseudo-terminal.
    pub tty: bool,
    /// `port = "auto"`: its first port is chosen free at start and recorded; 0 until then.
    pub auto_port: bool,
    /// It starts only when one of these profiles is active (`--profile`,
    /// `XTASK_PROFILES`) or when it is named; none: always.
    pub profiles: Vec<String>,
    /// It starts only when named on the command line.
    pub disabled: bool,
    /// One of the instances of a service with `replicas` (`api.2` of `api`): its name.
    pub group: Option<String>,
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
    /// Restarted whenever this dependency restarts (a crash, `restart`, a rebuild):
    /// Docker Compose's `depends_on.restart`.
    pub restart: bool,
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
    /// The pause between liveness probes of a healthy service, when it should differ
    /// from `interval` (an access log filled by a probe every second).
    pub interval_healthy: Option<Duration>,
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

/// A service name: letters, digits, `-` and `_`. Names become file names in the state
/// directory, so a name read from anywhere else (another process's environment) is
/// used only when it passes this.
pub fn valid_service_name(name: &str) -> bool {
    name.len() <= MAX_NAME
        && name.starts_with(|c: char| c.is_ascii_alphanumeric())
        && name
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || matches!(c, '-' | '_' | '.'))
}

/// The longest service name: it becomes file, cgroup and container names, whose
/// limits (255 bytes a path component, 63 a hostname label) it must stay far below.
pub const MAX_NAME: usize = 64;

/// A stable hash (FNV-1a) of a project's root, for the names of the objects xtask
/// creates outside the project (containers, cgroups): two checkouts differ.
pub fn fnv1a(bytes: &[u8]) -> u64 {
    bytes.iter().fold(0xcbf2_9ce4_8422_2325, |hash, b| {
        (hash ^ u64::from(*b)).wrapping_mul(0x0100_0000_01b3)
    })
}

impl Config {
    /// What can be known of the project without a valid file: its root (the file's
    /// directory) and its state directory (the file's `state_dir` when the TOML still
    /// parses and names one plainly, else the default), with no services. `stop`,
    /// `cleanup` and `status` work from the records and the process scan with it.
    /// `None` when not even the directory exists.
    pub fn without_services(path: &Path) -> Option<Config> {
        let root = root_of(path).ok()?;
        let state_dir = std::fs::read_to_string(path)
            .ok()
            .and_then(|text| text.parse::<toml::Table>().ok())
            .and_then(|table| {
                let dir = table.get("project")?.get("state_dir")?.as_str()?.to_string();
                (!dir.trim().is_empty() && !dir.contains("${")).then_some(dir)
            })
            .map_or_else(|| root.join(".xtask"), |dir| root.join(dir));
        Some(Config {
            path: path.to_path_buf(),
            given: vec![path.to_path_buf()],
            project: Project {
                name: root
                    .file_name()
                    .map_or_else(|| "project".to_string(), |n| n.to_string_lossy().into_owned()),
                state_dir,
                stop_timeout: DEFAULT_STOP_TIMEOUT,
                env: Vec::new(),
                compose_file: None,
                compose_services: Vec::new(),
                orphan_patterns: Vec::new(),
                abort_on_failure: false,
                watch_debounce: DEFAULT_WATCH_DEBOUNCE,
                log_rotation: LogRotation::default(),
                tty: false,
            },
            root,
            services: Vec::new(),
        })
    }

    pub fn service(&self, name: &str) -> Option<&Service> {
        self.services.iter().find(|s| s.name == name)
    }

    /// The replicas of a service with `replicas` (`api` → `api.1`, `api.2`, …).
    pub fn members(&self, group: &str) -> Vec<&Service> {
        self.services
            .iter()
            .filter(|s| s.group.as_deref() == Some(group))
            .collect()
    }

    pub fn graph(&self) -> Graph<'_> {
        Graph::new(&self.services)
    }

    /// A dependency that some service needs `completed`: a one-shot job.
    pub fn is_job(&self, name: &str) -> bool {
        self.services.iter().any(|s| {
            s.depends_on
                .iter()
                .any(|d| d.service == name && d.condition == Condition::Completed)
        })
    }

    /// The service closest in spelling to `name`, for "did you mean" hints.
    pub fn suggest(&self, name: &str) -> Option<&str> {
        read::suggest(name, self.services.iter().map(|s| s.name.as_str()))
    }
}

impl Service {
    /// The dependencies' names.
    pub fn dependency_names(&self) -> impl Iterator<Item = &str> {
        self.depends_on.iter().map(|d| d.service.as_str())
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
