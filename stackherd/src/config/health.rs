//! Health checks, dependency conditions, restart policies and signal names.

use nix::sys::signal::Signal;
use toml::Spanned;

use super::read::{self, Diagnostics, TableReader, parse_command};
use std::time::Duration;

use super::{
    Condition, DEFAULT_INTERVAL, DEFAULT_LIVENESS_INTERVAL, DEFAULT_PROBE_TIMEOUT, DEFAULT_RETRIES, DEPENDENCY_KEYS,
    Dependency, HEALTH_KEYS, Health, MAX_DURATION, PROBE_KEYS, Probe, RestartPolicy,
};

impl Health {
    /// The pause between liveness probes of a healthy service.
    pub fn liveness_interval(&self) -> Duration {
        self.interval_healthy.unwrap_or(self.interval)
    }

    pub(super) fn default_for(probe: Probe) -> Health {
        Health {
            probe,
            interval: DEFAULT_INTERVAL,
            interval_healthy: Some(DEFAULT_LIVENESS_INTERVAL),
            timeout: DEFAULT_PROBE_TIMEOUT,
            retries: DEFAULT_RETRIES,
            start_period: Duration::ZERO,
        }
    }

    /// How long a starting service may take to become healthy.
    /// `start_period + retries * interval`; the config refuses one above
    /// `MAX_DURATION`, and the arithmetic saturates all the same.
    pub fn startup_deadline(&self) -> Duration {
        self.start_period
            .saturating_add(self.interval.saturating_mul(self.retries))
            .min(MAX_DURATION)
    }
}

pub(super) fn parse_health(value: &read::Value<'_>, context: &str, diags: &mut Diagnostics) -> Option<Health> {
    let what = format!("`health` in {context}");
    let table = read::as_table(value, &what, diags)?;
    let reader = TableReader::new(table, format!("the health of {context}"), HEALTH_KEYS);
    reader.report_unknown(diags);
    let mut probes = read_probes(&reader, diags);
    let mut health = read_timing(&reader, diags);
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

/// The probes the table names (one, when it is right).
fn read_probes(reader: &TableReader<'_, '_>, diags: &mut Diagnostics) -> Vec<Probe> {
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
    probes
}

/// The health check's pace and budget, its probe still to be filled in.
fn read_timing(reader: &TableReader<'_, '_>, diags: &mut Diagnostics) -> Health {
    let mut health = Health::default_for(Probe::Port(0));
    if let Some(interval) = reader.duration("interval", diags) {
        if interval.get_ref().is_zero() {
            diags.error(
                interval.span(),
                format!("{} must be more than zero", reader.what("interval")),
            );
        }
        health.interval = interval.into_inner();
        // An `interval` written is the liveness pace too, unless `interval_healthy` is.
        health.interval_healthy = None;
    }
    if let Some(interval) = reader.duration("interval_healthy", diags) {
        if interval.get_ref().is_zero() {
            diags.error(
                interval.span(),
                format!("{} must be more than zero", reader.what("interval_healthy")),
            );
        }
        health.interval_healthy = Some(interval.into_inner());
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
    let budget = health
        .start_period
        .saturating_add(health.interval.saturating_mul(health.retries));
    let culprit = ["retries", "interval", "start_period"]
        .into_iter()
        .find_map(|key| reader.get(key).map(|value| (key, value)));
    if budget > crate::config::MAX_DURATION
        && let Some((key, value)) = culprit
    {
        diags.error_with_help(
            value.span(),
            format!(
                "{} makes the start-up budget (`start_period + retries × interval`) longer than 24h",
                reader.what(key)
            ),
            "lower `retries` or `interval`",
        );
    }
    health
}

/// `depends_on = ["db"]` (each healthy), `depends_on = { db = "healthy", migrate =
/// "completed" }`, or, as Docker Compose writes it, `depends_on = { db = { condition =
/// "healthy", restart = true } }`: restarted whenever `db` is.
pub(super) fn parse_dependencies(
    value: &read::Value<'_>,
    what: &str,
    diags: &mut Diagnostics,
) -> (Vec<Dependency>, Vec<std::ops::Range<usize>>) {
    let mut deps = Vec::new();
    let mut spans = Vec::new();
    match value.get_ref() {
        toml::de::DeValue::Table(table) => {
            for (name, entry) in table {
                let what = format!("`{}` in {what}", name.get_ref());
                let Some((condition, restart)) = dependency_entry(entry, &what, diags) else {
                    continue;
                };
                deps.push(Dependency {
                    service: name.get_ref().to_string(),
                    condition,
                    restart,
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
                    restart: false,
                });
            }
        }
    }
    (deps, spans)
}

/// One dependency's value: its condition as a string, or a table with `condition`
/// (default healthy) and `restart`.
fn dependency_entry(entry: &read::Value<'_>, what: &str, diags: &mut Diagnostics) -> Option<(Condition, bool)> {
    let toml::de::DeValue::Table(table) = entry.get_ref() else {
        let text = read::as_string(entry, &format!("the condition of {what}"), diags)?;
        return Some((condition(&text, diags)?, false));
    };
    let reader = TableReader::new(table, what.to_string(), DEPENDENCY_KEYS);
    reader.report_unknown(diags);
    let condition = match reader.string("condition", diags) {
        Some(text) => condition(&text, diags)?,
        None => Condition::Healthy,
    };
    let restart = read::boolean(&reader, "restart", diags).unwrap_or(false);
    Some((condition, restart))
}

fn condition(text: &Spanned<String>, diags: &mut Diagnostics) -> Option<Condition> {
    match text.get_ref().as_str() {
        "started" => Some(Condition::Started),
        "healthy" => Some(Condition::Healthy),
        "completed" => Some(Condition::Completed),
        other => {
            diags.error_with_help(
                text.span(),
                format!("`{other}` is not a dependency condition"),
                "use \"started\", \"healthy\" or \"completed\"",
            );
            None
        }
    }
}

pub(super) fn parse_policy(text: &Spanned<String>, what: &str, diags: &mut Diagnostics) -> Option<RestartPolicy> {
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

pub(super) fn parse_signal(name: &Spanned<String>, what: &str, diags: &mut Diagnostics) -> Option<Signal> {
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

#[cfg(test)]
mod tests {
    use std::path::Path;
    use std::time::Duration;

    use crate::config::Config;

    #[test]
    fn liveness_is_probed_every_5s_unless_an_interval_is_written() {
        let text = r#"
[services.quiet]
command = "a"
port = 8001

[services.checked]
command = "a"
health = { command = "true" }

[services.paced]
command = "a"
health = { command = "true", interval = "2s" }

[services.both]
command = "a"
health = { command = "true", interval = "2s", interval_healthy = "1m" }
"#;
        let config = Config::parse(Path::new("/p/services.toml"), Path::new("/p"), text).expect("a valid config");
        let liveness = |name: &str| {
            let health = config
                .service(name)
                .and_then(|s| s.health.as_ref())
                .expect("a health check");
            (health.interval, health.liveness_interval())
        };
        let (second, five) = (Duration::from_secs(1), Duration::from_secs(5));
        assert_eq!(liveness("quiet"), (second, five));
        assert_eq!(liveness("checked"), (second, five));
        assert_eq!(liveness("paced"), (Duration::from_secs(2), Duration::from_secs(2)));
        assert_eq!(liveness("both"), (Duration::from_secs(2), Duration::from_secs(60)));
    }
}
