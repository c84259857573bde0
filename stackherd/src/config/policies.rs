//! How a service is stopped and restarted: `stop_signal`, `stop_timeout`,
//! `stop_command`, `restart`, `max_restarts`, `success_exit_codes`, the restart
//! delay and window, and `startup_delay`, each with its default.

use std::time::Duration;

use nix::sys::signal::Signal;
use toml::Spanned;

use super::health::{parse_policy, parse_signal};
use super::read::{self, Diagnostics, TableReader, parse_command};
use super::{
    CommandLine, DEFAULT_MAX_RESTARTS, DEFAULT_RESTART_DELAY, DEFAULT_RESTART_WINDOW, DEFAULT_STOP_TIMEOUT, Project,
    RestartPolicy,
};

/// How a service is stopped and restarted, defaults filled in.
pub(super) struct Policies {
    pub stop_signal: Signal,
    pub stop_timeout: Duration,
    pub stop_command: Option<CommandLine>,
    pub restart: RestartPolicy,
    pub max_restarts: Option<u32>,
    pub restart_delay: Duration,
    pub restart_window: Duration,
    pub success_exit_codes: Vec<i32>,
    pub startup_delay: Duration,
}

pub(super) fn parse_policies(
    reader: &TableReader<'_, '_>,
    project: Option<&Project>,
    diags: &mut Diagnostics,
) -> Policies {
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
    let max_restarts = reader
        .get("max_restarts")
        .and_then(|v| parse_max_restarts(v, &reader.what("max_restarts"), diags));
    let success_exit_codes = reader
        .get("success_exit_codes")
        .map(|v| parse_exit_codes(v, &reader.what("success_exit_codes"), diags));
    let restart_window = reader.duration("restart_window", diags).map(Spanned::into_inner);
    let restart_delay = reader.duration("restart_delay", diags).map(Spanned::into_inner);
    let startup_delay = reader.duration("startup_delay", diags).map(Spanned::into_inner);
    let project_timeout = project.map_or(DEFAULT_STOP_TIMEOUT, |p| p.stop_timeout);
    Policies {
        stop_signal: stop_signal.unwrap_or(Signal::SIGTERM),
        stop_timeout: stop_timeout.unwrap_or(project_timeout),
        stop_command,
        restart: restart.unwrap_or(RestartPolicy::No),
        max_restarts: max_restarts.unwrap_or(Some(DEFAULT_MAX_RESTARTS)),
        restart_delay: restart_delay.unwrap_or(DEFAULT_RESTART_DELAY),
        restart_window: restart_window.unwrap_or(DEFAULT_RESTART_WINDOW),
        success_exit_codes: success_exit_codes.unwrap_or_else(|| vec![0]),
        startup_delay: startup_delay.unwrap_or(Duration::ZERO),
    }
}

fn parse_max_restarts(value: &read::Value<'_>, what: &str, diags: &mut Diagnostics) -> Option<Option<u32>> {
    if let toml::de::DeValue::String(text) = value.get_ref() {
        if text == "unlimited" {
            return Some(None);
        }
        diags.error_with_help(
            value.span(),
            format!("{what} must be a whole number from 0 or \"unlimited\""),
            "write, for example, max_restarts = 5",
        );
        return None;
    }
    match read::as_integer(value, what, diags).map(u32::try_from) {
        Some(Ok(n)) => Some(Some(n)),
        Some(Err(_)) => {
            diags.error(
                value.span(),
                format!("{what} must be a whole number from 0 or \"unlimited\""),
            );
            None
        }
        None => None,
    }
}

/// `success_exit_codes`: a list of exit codes from 0 to 255.
fn parse_exit_codes(value: &read::Value<'_>, what: &str, diags: &mut Diagnostics) -> Vec<i32> {
    let toml::de::DeValue::Array(items) = value.get_ref() else {
        diags.error_with_help(
            value.span(),
            format!("{what} must be a list of exit codes"),
            "write, for example, success_exit_codes = [0, 143]",
        );
        return vec![0];
    };
    let mut codes = Vec::new();
    for item in items {
        match read::as_integer(item, what, diags).map(|n| u8::try_from(n).map(i32::from)) {
            Some(Ok(code)) => codes.push(code),
            Some(Err(_)) => diags.error(item.span(), format!("{what}: an exit code is from 0 to 255")),
            None => {}
        }
    }
    codes
}
