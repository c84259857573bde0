//! The whole command-line surface, at a glance.

use std::path::PathBuf;
use std::time::Duration;

use clap::{Parser, Subcommand};

/// Starts, watches and stops the local development stack described in services.toml.
///
/// The parser of a binary that has no commands of its own; a team's xtask flattens
/// [`Options`] and [`Command`] into its own instead (see the crate's documentation).
#[derive(Debug, Parser)]
#[command(name = "xtask", version, propagate_version = true)]
pub struct Cli {
    #[command(flatten)]
    pub options: Options,

    #[command(subcommand)]
    pub command: Command,
}

/// The options every command takes, wherever they stand on the command line: flatten
/// them into the top level of your parser (`#[command(flatten)]`).
#[derive(Debug, Clone, Default, clap::Args)]
pub struct Options {
    /// The services.toml to use [default: the nearest services.toml in the current
    /// directory or above it, with services.local.toml beside it]; repeated, later
    /// files override earlier ones
    #[arg(
        long,
        global = true,
        env = "XTASK_CONFIG",
        value_delimiter = ':',
        value_name = "PATH"
    )]
    pub config: Vec<PathBuf>,

    /// Print only warnings, failures and results, not progress
    #[arg(short, long, global = true)]
    pub quiet: bool,

    /// Activate a profile: its services start with the others (repeatable)
    #[arg(
        long = "profile",
        global = true,
        env = "XTASK_PROFILES",
        value_delimiter = ',',
        value_name = "NAME"
    )]
    pub profiles: Vec<String>,
}

/// The commands: flatten them into your own subcommands (`#[command(flatten)]`). The
/// hidden ones are how the binary runs itself again (the monitor, the log relays), so
/// they must stay reachable as the first argument: a start checks that they are.
#[derive(Debug, Subcommand)]
pub enum Command {
    /// Check services.toml, programs, working directories, ports and the state directory
    Check {
        /// Print the merged config, each value with the file it comes from, and check nothing
        #[arg(long)]
        print: bool,
    },
    /// Start services in the foreground: one prefixed log stream, restarts, Ctrl+C stops all
    Start {
        /// Services to start (all when none are named)
        services: Vec<String>,
        /// Stop everything and exit 1 when a service fails for good (or set
        /// `abort_on_failure = true` in [project])
        #[arg(long, conflicts_with = "tui")]
        abort_on_failure: bool,
        /// Show the terminal UI instead of the log stream; quitting it stops what this
        /// start covers, as Ctrl+C does
        #[arg(long)]
        tui: bool,
        #[command(flatten)]
        prepare: PrepareFlags,
    },
    /// Start services and their dependencies in the background; return once all are healthy
    StartBg {
        /// Services to start (all when none are named)
        services: Vec<String>,
        /// Leave no monitor behind: nothing restarts crashed services
        #[arg(long)]
        no_monitor: bool,
        #[command(flatten)]
        prepare: PrepareFlags,
    },
    /// Stop services and what depends on them, then start them again; the rest keeps running
    Restart {
        /// Services to restart (all when none are named)
        services: Vec<String>,
        /// Leave no monitor behind: nothing restarts crashed services
        #[arg(long)]
        no_monitor: bool,
        #[command(flatten)]
        prepare: PrepareFlags,
    },
    /// Run the build steps of services (all when none are named)
    Build { services: Vec<String> },
    /// Start services, run a command, stop what was started; exit with the command's code
    #[command(after_help = "Example: cargo xtask run -- cargo test")]
    Run {
        /// Services to start (all when none are named)
        services: Vec<String>,
        /// The command and its arguments, after `--`
        #[arg(last = true, required = true, value_name = "CMD")]
        command: Vec<String>,
        /// Let CMD finish even when a service fails for good while it runs
        #[arg(long)]
        no_abort: bool,
        #[command(flatten)]
        prepare: PrepareFlags,
    },
    /// Show what runs: state, PID, uptime, CPU, memory, ports, health, last log line, and leftovers
    Status {
        /// Services to show (all when none are named)
        services: Vec<String>,
        /// Print JSON instead of a table
        #[arg(long)]
        json: bool,
    },
    /// Print the services' logs, interleaved in time order
    Logs {
        /// Services whose logs to print (all when none are named)
        services: Vec<String>,
        /// How many lines from the end, per service
        #[arg(short = 'n', long = "lines", default_value_t = 100)]
        lines: usize,
        /// Keep printing lines as they are written; services that start later join
        #[arg(short, long)]
        follow: bool,
        /// Only lines written since a time ago ("10m") or a UTC time ("2026-11-23T10:00")
        #[arg(long, value_name = "WHEN", value_parser = parse_since)]
        since: Option<u64>,
        /// Show when each line was written (UTC)
        #[arg(short, long)]
        timestamps: bool,
        /// Lines without the service's name before each (for piping)
        #[arg(long)]
        no_prefix: bool,
        /// The lines' bytes exactly as the services wrote them, escape sequences included
        /// (otherwise only colour passes: no service can drive your terminal)
        #[arg(long)]
        raw: bool,
    },
    /// Stop services (and what depends on them) in five phases; nothing is left running
    Stop {
        /// Services to stop (all when none are named)
        services: Vec<String>,
        /// Skip the grace period: SIGKILL at once [env: XTASK_FORCE]
        #[arg(long, overrides_with = "no_force")]
        force: bool,
        /// Keep the grace period even when XTASK_FORCE is set
        #[arg(long, overrides_with = "force")]
        no_force: bool,
        /// Grace period for every service, overriding `stop_timeout` (e.g. 500ms, 10s)
        #[arg(long, value_name = "DURATION", value_parser = crate::config::parse_cli_duration)]
        timeout: Option<Duration>,
        /// Also remove the named volumes xtask created and the compose project's volumes (kept by default: they hold data)
        #[arg(long)]
        volumes: bool,
        /// Only phase 4: stop and remove containers; processes keep running
        #[arg(long)]
        containers: bool,
    },
    /// Stop this project's leftover processes and remove stale records
    Cleanup {
        /// List what would be stopped and removed, and change nothing
        #[arg(long)]
        dry_run: bool,
    },
    /// Show the running stack in a full-screen terminal UI; quitting leaves it running
    Ui,
    /// Wire a repository for stackherd: its xtask, alias, .gitignore, make fragment and
    /// a starter services.toml; prints what it changed, and changes only what is missing
    Init {
        /// The repository's root (its workspace Cargo.toml)
        #[arg(default_value = ".")]
        path: PathBuf,
        /// Print the diff and write nothing
        #[arg(long)]
        dry_run: bool,
    },
    /// Write a services.toml from a Procfile, a Docker Compose file or a
    /// process-compose file, listing what did not map; never overwrites a file
    Import {
        /// The file to import
        file: PathBuf,
        /// Its format [default: from its name]
        #[arg(long, value_enum)]
        format: Option<ImportFormat>,
        /// Where to write [default: services.toml beside FILE]; `-` prints it
        #[arg(short, long, value_name = "PATH")]
        output: Option<PathBuf>,
    },
    /// Print a shell completion script
    Completions { shell: clap_complete::Shell },
    /// Words for a shell's completion: `services` lists the service names (internal)
    #[command(name = "__complete", hide = true)]
    Complete { what: String },
    /// The detached monitor that start-bg leaves behind (internal)
    #[command(name = "__monitor", hide = true)]
    Monitor {
        services: Vec<String>,
        /// The state lock, already held, handed over by start-bg
        #[arg(long)]
        lock_fd: Option<i32>,
        /// No build steps before the start (start-bg decided so)
        #[arg(long)]
        no_build: bool,
        /// No cleanup of leftovers before the start (start-bg decided so)
        #[arg(long)]
        no_cleanup: bool,
        /// When start-bg began (milliseconds since the Unix epoch): the start's
        /// timings count from there
        #[arg(long)]
        began_ms: Option<u64>,
    },
    /// A log relay between services and their logs (internal): `LOG MAX_SIZE KEEP FD`
    /// for each service
    #[command(name = "__relay", hide = true)]
    Relay {
        #[arg(allow_hyphen_values = true, trailing_var_arg = true)]
        args: Vec<std::ffi::OsString>,
    },
    /// Answers that the hidden commands reach this library (internal): a start asks
    /// before it runs the binary again
    #[command(name = "__reexec-check", hide = true)]
    ReexecCheck,
}

/// The formats `import` reads, as `--format` names them.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum ImportFormat {
    Procfile,
    Compose,
    ProcessCompose,
}

/// Build and cleanup before a start; a flag beats its environment variable.
#[derive(Debug, Clone, Copy, clap::Args)]
pub struct PrepareFlags {
    /// Run the build steps first [default; env: XTASK_BUILD]
    #[arg(long, overrides_with = "no_build")]
    pub build: bool,
    /// Skip the build steps
    #[arg(long, overrides_with = "build")]
    pub no_build: bool,
    /// Stop leftovers of earlier runs first [default; env: XTASK_CLEANUP]
    #[arg(long, overrides_with = "no_cleanup")]
    pub cleanup: bool,
    /// Skip the cleanup of leftovers
    #[arg(long, overrides_with = "cleanup")]
    pub no_cleanup: bool,
}

/// `--since`: a duration ago ("10m", "1h 30m") or a UTC time ("2026-11-23T10:00",
/// "2026-11-23 10:00:05", "2026-11-23"), as milliseconds since the Unix epoch.
pub fn parse_since(text: &str) -> Result<u64, String> {
    let now = std::time::SystemTime::now();
    let at = match humantime::parse_duration(text) {
        Ok(ago) => now.checked_sub(ago).unwrap_or(std::time::UNIX_EPOCH),
        Err(_) => {
            let text = text.trim().trim_end_matches('Z');
            let full = match text.len() {
                10 => format!("{text}T00:00:00"),
                16 => format!("{text}:00"),
                _ => text.to_string(),
            };
            humantime::parse_rfc3339_weak(&full).map_err(|_| {
                format!("`{text}` is neither a duration (\"10m\") nor a UTC time (\"2026-11-23T10:00\")")
            })?
        }
    };
    let ms = at.duration_since(std::time::UNIX_EPOCH).map_or(0, |d| d.as_millis());
    Ok(u64::try_from(ms).unwrap_or(u64::MAX))
}

#[cfg(test)]
mod tests {
    #[test]
    fn cli_is_well_formed() {
        use clap::CommandFactory;
        super::Cli::command().debug_assert();
    }
}
