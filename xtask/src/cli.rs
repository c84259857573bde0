//! The whole command-line surface, at a glance.

use std::path::PathBuf;
use std::time::Duration;

use clap::{Parser, Subcommand};

/// Starts, watches and stops the local development stack described in services.toml.
#[derive(Debug, Parser)]
#[command(name = "xtask", version, propagate_version = true)]
pub struct Cli {
    /// The services.toml to use [default: services.toml in the workspace root]
    #[arg(long, global = true, env = "XTASK_CONFIG", value_name = "PATH")]
    pub config: Option<PathBuf>,

    #[command(subcommand)]
    pub command: Command,
}

#[derive(Debug, Subcommand)]
pub enum Command {
    /// Check services.toml, programs, working directories, ports and the state directory
    Check,
    /// Start services in the foreground: one prefixed log stream, restarts, Ctrl+C stops all
    Start {
        /// Services to start (all when none are named)
        services: Vec<String>,
    },
    /// Start services and their dependencies in the background; return once all are healthy
    StartBg {
        /// Services to start (all when none are named)
        services: Vec<String>,
        /// Leave no monitor behind: nothing restarts crashed services
        #[arg(long)]
        no_monitor: bool,
    },
    /// Stop services and what depends on them, then start them again; the rest keeps running
    Restart {
        /// Services to restart (all when none are named)
        services: Vec<String>,
        /// Leave no monitor behind: nothing restarts crashed services
        #[arg(long)]
        no_monitor: bool,
    },
    /// Show what runs: state, PID, uptime, CPU, memory, ports, health, last log line
    Status {
        /// Services to show (all when none are named)
        services: Vec<String>,
        /// Print JSON instead of a table
        #[arg(long)]
        json: bool,
    },
    /// Print a service's log
    Logs {
        service: String,
        /// How many lines from the end
        #[arg(short = 'n', long = "lines", default_value_t = 100)]
        lines: usize,
        /// Keep printing lines as they are written
        #[arg(short, long)]
        follow: bool,
    },
    /// Stop services (and what depends on them) in five phases; nothing is left running
    Stop {
        /// Services to stop (all when none are named)
        services: Vec<String>,
        /// Skip the grace period: SIGKILL at once
        #[arg(long)]
        force: bool,
        /// Grace period for every service, overriding `stop_timeout` (e.g. 500ms, 10s)
        #[arg(long, value_name = "DURATION", value_parser = humantime::parse_duration)]
        timeout: Option<Duration>,
    },
    /// Stop this project's leftover processes and remove stale records
    Cleanup {
        /// List what would be stopped and removed, and change nothing
        #[arg(long)]
        dry_run: bool,
    },
    /// The detached monitor that start-bg leaves behind (internal)
    #[command(name = "__monitor", hide = true)]
    Monitor { services: Vec<String> },
}

#[cfg(test)]
mod tests {
    #[test]
    fn cli_is_well_formed() {
        use clap::CommandFactory;
        super::Cli::command().debug_assert();
    }
}
