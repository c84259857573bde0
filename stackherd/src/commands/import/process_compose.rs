//! A process-compose file: `processes` with their commands, environments, working
//! directories, dependencies and conditions, probes, availability and shutdown.

use marked_yaml::Node;
use marked_yaml::types::MarkedMappingNode;
use toml::Value;

use super::model::{Imported, Service, string_table};
use super::yaml::{self, boolean, key_line, line, number, seconds, text};

pub fn import(doc: &MarkedMappingNode) -> Imported {
    let mut imported = Imported::default();
    for (key, value) in doc.iter() {
        match key.as_str() {
            "version" => {}
            "environment" => {
                let (pairs, bare) = yaml::env(value);
                imported.project_env = pairs;
                for name in bare {
                    imported.unmapped(line(value), format!("`environment: {name}` without a value"));
                }
            }
            "processes" => match value.as_mapping() {
                Some(processes) => {
                    for (name, process) in processes.iter() {
                        let service = match process.as_mapping() {
                            Some(process) => one(name.as_str(), process, &mut imported),
                            None => {
                                imported.unmapped(line(process), format!("`{}`: not a mapping", name.as_str()));
                                continue;
                            }
                        };
                        imported.services.push(service);
                    }
                }
                None => imported.unmapped(line(value), "`processes`: not a mapping"),
            },
            other => imported.unmapped(key_line(key), format!("`{other}`: no such setting in services.toml")),
        }
    }
    imported
}

fn one(name: &str, process: &MarkedMappingNode, imported: &mut Imported) -> Service {
    let mut service = Service::new(name);
    let mut liveness = None;
    for (key, value) in process.iter() {
        let at = key_line(key);
        let mut skip = |why: &str| imported.unmapped(at, format!("`{name}.{}`: {why}", key.as_str()));
        match key.as_str() {
            "command" => match text(value) {
                Some(command) => service.set("command", command),
                None => skip("not a string"),
            },
            "working_dir" => match text(value) {
                Some(dir) => service.set("cwd", dir),
                None => skip("not a string"),
            },
            "environment" => {
                let (pairs, bare) = yaml::env(value);
                if !pairs.is_empty() {
                    service.set("env", string_table(&pairs));
                }
                for name in bare {
                    skip(&format!("`{name}` has no value"));
                }
            }
            "depends_on" => depends_on(name, value, &mut service, imported),
            "readiness_probe" => probe(name, value, &mut service, imported),
            "liveness_probe" => liveness = Some(value),
            "ready_log_line" => match text(value) {
                Some(log) => service.set(
                    "health",
                    Value::Table(
                        [("log".to_string(), Value::String(regex::escape(&log)))]
                            .into_iter()
                            .collect(),
                    ),
                ),
                None => skip("not a string"),
            },
            "availability" => availability(name, value, &mut service, imported),
            "shutdown" => shutdown(name, value, &mut service, imported),
            "replicas" => match number(value) {
                Some(n) => service.set("replicas", n),
                None => skip("not a number"),
            },
            "is_tty" => match boolean(value) {
                Some(tty) => service.set("tty", tty),
                None => skip("not a boolean"),
            },
            "disabled" => match boolean(value) {
                Some(disabled) => service.set("disabled", disabled),
                None => skip("not a boolean"),
            },
            "is_daemon" => skip(
                "a daemon: stackherd follows a program that forks into the background; set `pid_file` if it writes one",
            ),
            "namespace" => skip("namespaces start with the others; services.toml's `profiles` start only when asked"),
            _ => skip("no such setting in services.toml"),
        }
    }
    if let Some(liveness) = liveness {
        if service.has("health") {
            imported.unmapped(line(liveness), format!("`{name}.liveness_probe`: services.toml has one probe per service, the readiness probe is kept (it goes on checking a healthy service)"));
        } else {
            probe(name, liveness, &mut service, imported);
        }
    }
    if !service.has("command") {
        imported.unmapped(line_of(process), format!("`{name}` has no command"));
    }
    service
}

fn line_of(map: &MarkedMappingNode) -> usize {
    map.span().start().map_or(1, |m| m.line())
}

fn depends_on(name: &str, value: &Node, service: &mut Service, imported: &mut Imported) {
    let Some(map) = value.as_mapping() else {
        imported.unmapped(line(value), format!("`{name}.depends_on`: not a mapping"));
        return;
    };
    let mut conditions = Vec::new();
    for (dependency, spec) in map.iter() {
        // `db: {condition: process_healthy}`, or the short `db: process_healthy`.
        let condition = spec
            .as_mapping()
            .and_then(|s| s.get_node("condition"))
            .and_then(text)
            .or_else(|| text(spec))
            .unwrap_or_else(|| "process_started".to_string());
        let ours = match condition.as_str() {
            "process_started" => "started",
            "process_healthy" | "process_log_ready" => "healthy",
            "process_completed_successfully" => "completed",
            "process_completed" => {
                imported.unmapped(
                    line(spec),
                    format!(
                        "`{name}.depends_on.{}`: process_completed (any exit) becomes completed (exit 0)",
                        dependency.as_str()
                    ),
                );
                "completed"
            }
            other => {
                imported.unmapped(
                    line(spec),
                    format!("`{name}.depends_on.{}`: condition {other}", dependency.as_str()),
                );
                "started"
            }
        };
        conditions.push((dependency.as_str().to_string(), ours.to_string()));
    }
    service.set("depends_on", string_table(&conditions));
}

fn probe(name: &str, value: &Node, service: &mut Service, imported: &mut Imported) {
    let Some(map) = value.as_mapping() else {
        imported.unmapped(line(value), format!("`{name}`: a probe that is not a mapping"));
        return;
    };
    let mut health = toml::Table::new();
    for (key, v) in map.iter() {
        match key.as_str() {
            "exec" => match v.as_mapping().and_then(|e| e.get_node("command")).and_then(text) {
                Some(command) => {
                    health.insert("command".into(), Value::String(command));
                }
                None => imported.unmapped(line(v), format!("`{name}`: an exec probe without a command")),
            },
            "http_get" => match v.as_mapping() {
                Some(get) => {
                    let field = |k: &str| get.get_node(k).and_then(text);
                    let url = format!(
                        "{}://{}:{}{}",
                        field("scheme").unwrap_or_else(|| "http".into()).to_lowercase(),
                        field("host").unwrap_or_else(|| "127.0.0.1".into()),
                        field("port").unwrap_or_else(|| "80".into()),
                        field("path")
                            .map_or_else(|| "/".into(), |p| if p.starts_with('/') { p } else { format!("/{p}") })
                    );
                    health.insert("http".into(), Value::String(url));
                }
                None => imported.unmapped(line(v), format!("`{name}`: http_get is not a mapping")),
            },
            "initial_delay_seconds" | "period_seconds" | "timeout_seconds" => {
                let ours = match key.as_str() {
                    "initial_delay_seconds" => "start_period",
                    "period_seconds" => "interval",
                    _ => "timeout",
                };
                if let Some(d) = seconds(v) {
                    health.insert(ours.into(), Value::String(d));
                }
            }
            "failure_threshold" => {
                if let Some(n) = number(v) {
                    health.insert("retries".into(), Value::Integer(n));
                }
            }
            other => imported.unmapped(line(v), format!("`{name}`: probe setting {other}")),
        }
    }
    if health.contains_key("command") || health.contains_key("http") {
        service.set("health", Value::Table(health));
    }
}

fn availability(name: &str, value: &Node, service: &mut Service, imported: &mut Imported) {
    let Some(map) = value.as_mapping() else { return };
    // process-compose restarts for ever unless `max_restarts` (above 0) says otherwise.
    let restarts = matches!(
        map.get_node("restart").and_then(text).as_deref(),
        Some("always" | "on_failure")
    );
    if restarts && map.get_node("max_restarts").and_then(number).unwrap_or(0) == 0 {
        service.set("max_restarts", "unlimited");
    }
    for (key, v) in map.iter() {
        match key.as_str() {
            "restart" => match text(v).as_deref() {
                Some("always") => service.set("restart", "always"),
                Some("on_failure") => service.set("restart", "on-failure"),
                Some("no") => service.set("restart", "no"),
                Some("exit_on_failure") => imported.unmapped(line(v), format!("`{name}.availability.restart: exit_on_failure`: use `start --abort-on-failure` (or `abort_on_failure = true` in [project])")),
                _ => imported.unmapped(line(v), format!("`{name}.availability.restart`: unknown value")),
            },
            "backoff_seconds" => {
                if let Some(d) = seconds(v) {
                    service.set("restart_delay", d);
                }
            }
            "max_restarts" => {
                if let Some(n) = number(v).filter(|n| *n > 0) {
                    service.set("max_restarts", n);
                }
            }
            other => imported.unmapped(line(v), format!("`{name}.availability.{other}`")),
        }
    }
}

fn shutdown(name: &str, value: &Node, service: &mut Service, imported: &mut Imported) {
    let Some(map) = value.as_mapping() else { return };
    for (key, v) in map.iter() {
        match key.as_str() {
            "command" => {
                if let Some(command) = text(v) {
                    service.set("stop_command", command);
                }
            }
            "signal" => match number(v).and_then(signal_name) {
                Some(signal) => service.set("stop_signal", signal),
                None => imported.unmapped(line(v), format!("`{name}.shutdown.signal`: not a signal number")),
            },
            "timeout_seconds" => {
                if let Some(d) = seconds(v) {
                    service.set("stop_timeout", d);
                }
            }
            other => imported.unmapped(line(v), format!("`{name}.shutdown.{other}`")),
        }
    }
}

/// process-compose gives signals by number.
fn signal_name(number: i64) -> Option<&'static str> {
    Some(match number {
        1 => "SIGHUP",
        2 => "SIGINT",
        3 => "SIGQUIT",
        9 => "SIGKILL",
        10 => "SIGUSR1",
        12 => "SIGUSR2",
        15 => "SIGTERM",
        _ => return None,
    })
}

/// The list form, for a test's comparison.
#[cfg(test)]
fn names(imported: &Imported) -> Vec<&str> {
    imported.services.iter().map(|s| s.name.as_str()).collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn processes_map_with_their_conditions_probes_and_policies() {
        let doc = yaml::parse(
            "version: \"0.5\"\nenvironment:\n  - 'SHARED=1'\nlog_level: debug\nprocesses:\n  db:\n    command: postgres -D data\n    readiness_probe:\n      exec:\n        command: pg_isready\n      period_seconds: 2\n      failure_threshold: 10\n    shutdown:\n      signal: 2\n      timeout_seconds: 20\n  api:\n    command: ./api\n    working_dir: api\n    environment:\n      - 'DB=postgres://x'\n    depends_on:\n      db:\n        condition: process_healthy\n      migrate:\n        condition: process_completed_successfully\n      cache: process_healthy\n    availability:\n      restart: on_failure\n      backoff_seconds: 2\n      max_restarts: 3\n    readiness_probe:\n      http_get:\n        host: 127.0.0.1\n        port: 8080\n        path: /health\n    replicas: 2\n    namespace: web\n",
        )
        .unwrap();
        let imported = import(&doc);
        assert_eq!(names(&imported), ["db", "api"]);
        assert_eq!(imported.project_env, [("SHARED".to_string(), "1".to_string())]);
        let text = imported.render("process-compose.yaml");
        for expected in [
            "health = { command = \"pg_isready\", interval = \"2s\", retries = 10 }",
            "stop_signal = \"SIGINT\"",
            "stop_timeout = \"20s\"",
            "cwd = \"api\"",
            "depends_on = { db = \"healthy\", migrate = \"completed\", cache = \"healthy\" }",
            "restart = \"on-failure\"",
            "restart_delay = \"2s\"",
            "max_restarts = 3",
            "health = { http = \"http://127.0.0.1:8080/health\" }",
            "replicas = 2",
            "line 4: `log_level`",
            "`api.namespace`",
        ] {
            assert!(text.contains(expected), "{expected} missing:\n{text}");
        }
    }
}
