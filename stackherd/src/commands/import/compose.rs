//! A Docker Compose file: each service becomes a container service of services.toml
//! (image, command, ports, volumes, environment, env files, dependencies and their
//! conditions, health check, restart policy, stop signal and grace period, replicas,
//! profiles). A service that is only built gets the image name Compose gives it.

use marked_yaml::Node;
use marked_yaml::types::MarkedMappingNode;
use toml::Value;

use super::model::{Imported, Service, string_table, strings};
use super::yaml::{self, boolean, key_line, line, number, text};

/// `project` names the images of services that Compose builds (`PROJECT-SERVICE`).
pub fn import(doc: &MarkedMappingNode, project: &str) -> Imported {
    let mut imported = Imported::default();
    // The file's own `name` is the project's name, as Compose takes it.
    let named = doc.get_node("name").and_then(text);
    let project = named.as_deref().unwrap_or(project);
    for (key, value) in doc.iter() {
        match key.as_str() {
            "version" | "name" => {}
            "services" => match value.as_mapping() {
                Some(services) => {
                    for (name, service) in services.iter() {
                        match service.as_mapping() {
                            Some(service) => {
                                let one = one(name.as_str(), service, project, &mut imported);
                                imported.services.push(one);
                            }
                            None => imported.unmapped(line(service), format!("`{}`: not a mapping", name.as_str())),
                        }
                    }
                }
                None => imported.unmapped(line(value), "`services`: not a mapping"),
            },
            "volumes" => {} // Named volumes are made by `docker run -v` as they are named.
            other => imported.unmapped(key_line(key), format!("`{other}`: services.toml has no such setting")),
        }
    }
    imported
}

fn one(name: &str, spec: &MarkedMappingNode, project: &str, imported: &mut Imported) -> Service {
    let mut service = Service::new(name);
    for (key, value) in spec.iter() {
        let at = key_line(key);
        let mut skip = |why: &str| imported.unmapped(at, format!("`{name}.{}`: {why}", key.as_str()));
        match key.as_str() {
            "image" => match text(value) {
                Some(image) => service.set("image", image),
                None => skip("not a string"),
            },
            "build" => skip(
                "stackherd runs images, it does not build them: build it first (`docker compose build`); the image is named as Compose names it",
            ),
            "command" => command(value, &mut service, &mut skip),
            "ports" => ports(name, value, &mut service, imported),
            "volumes" => match yaml::list(value) {
                Some(volumes) => service.set("volumes", strings(&volumes)),
                None => skip("the long syntax; write `- host:container`"),
            },
            "environment" => {
                let (pairs, bare) = yaml::env(value);
                if !pairs.is_empty() {
                    service.set("env", string_table(&pairs));
                }
                for variable in bare {
                    skip(&format!("`{variable}` takes its value from the shell; give it one"));
                }
            }
            "env_file" => match yaml::list(value) {
                Some(files) => service.set("env_file", strings(&files)),
                None => skip("the long syntax"),
            },
            "depends_on" => depends_on(name, value, &mut service, imported),
            "healthcheck" => healthcheck(name, value, &mut service, imported),
            "restart" => restart(value, &mut service, &mut skip),
            "stop_signal" => match text(value) {
                Some(signal) => service.set("stop_signal", signal),
                None => skip("not a string"),
            },
            "stop_grace_period" => match text(value) {
                Some(period) => service.set("stop_timeout", period),
                None => skip("not a duration"),
            },
            "deploy" => match value.as_mapping().and_then(|d| d.get_node("replicas")).and_then(number) {
                Some(n) => service.set("replicas", n),
                None => skip("only `replicas` maps"),
            },
            "scale" => match number(value) {
                Some(n) => service.set("replicas", n),
                None => skip("not a number"),
            },
            "profiles" => match yaml::list(value) {
                Some(profiles) => service.set("profiles", strings(&profiles)),
                None => skip("not a list"),
            },
            "container_name" => skip("stackherd names its containers after the project and the service"),
            "tty" | "stdin_open" if boolean(value) == Some(false) => {}
            _ => skip("services.toml has no such setting"),
        }
    }
    if !service.has("image") {
        let image = format!("{project}-{name}");
        service.set("image", image);
    }
    // A container service without a command runs the image's own.
    service
}

/// `restart`: Compose's policies as services.toml's.
fn restart(value: &Node, service: &mut Service, skip: &mut dyn FnMut(&str)) {
    match text(value).as_deref() {
        Some("no") => service.set("restart", "no"),
        Some("always" | "unless-stopped") => service.set("restart", "always"),
        Some(policy) if policy.starts_with("on-failure") => {
            service.set("restart", "on-failure");
            if let Some(n) = policy.strip_prefix("on-failure:").and_then(|n| n.parse::<i64>().ok()) {
                service.set("max_restarts", n);
            }
        }
        _ => skip("unknown policy"),
    }
}

/// `command`: a list as it is, a line only where it splits without a shell.
fn command(value: &Node, service: &mut Service, skip: &mut dyn FnMut(&str)) {
    match value {
        Node::Sequence(_) => match yaml::list(value) {
            Some(args) => service.set("command", strings(&args)),
            None => skip("not a list of strings"),
        },
        _ => match text(value).map(|c| split(&c)) {
            Some(Some(args)) => service.set("command", strings(&args)),
            _ => skip("a command line with quotes or variables stackherd does not split; write it as a list"),
        },
    }
}

/// `"8080:80"`, `"127.0.0.1:8080:80"` (containers are published on 127.0.0.1 alone),
/// `8080:80`; a port without a host side, a range or UDP does not map.
fn ports(name: &str, value: &Node, service: &mut Service, imported: &mut Imported) {
    let Some(items) = value.as_sequence() else {
        imported.unmapped(line(value), format!("`{name}.ports`: not a list"));
        return;
    };
    let mut mapped = Vec::new();
    for item in items.iter() {
        let Some(port) = text(item) else {
            imported.unmapped(
                line(item),
                format!("`{name}.ports`: the long syntax; write `- \"host:container\"`"),
            );
            continue;
        };
        let parts: Vec<&str> = port.split(':').collect();
        let pair = match parts.as_slice() {
            [host, inside] | [_, host, inside] => Some((*host, *inside)),
            _ => None,
        };
        match pair.filter(|(h, i)| h.parse::<u16>().is_ok() && i.parse::<u16>().is_ok()) {
            Some((host, inside)) => mapped.push(format!("{host}:{inside}")),
            None => imported.unmapped(
                line(item),
                format!("`{name}.ports`: `{port}` (a host port of its own is needed; no ranges, no UDP)"),
            ),
        }
    }
    if !mapped.is_empty() {
        service.set("ports", strings(&mapped));
    }
}

fn depends_on(name: &str, value: &Node, service: &mut Service, imported: &mut Imported) {
    let mut table = toml::Table::new();
    match value {
        Node::Sequence(_) => {
            // Compose's list means "started".
            for dependency in yaml::list(value).unwrap_or_default() {
                table.insert(dependency, Value::String("started".into()));
            }
        }
        Node::Mapping(map) => {
            for (dependency, spec) in map.iter() {
                let spec = spec.as_mapping();
                let condition = match spec.and_then(|s| s.get_node("condition")).and_then(text).as_deref() {
                    Some("service_healthy") => "healthy",
                    Some("service_completed_successfully") => "completed",
                    _ => "started",
                };
                let restart = spec.and_then(|s| s.get_node("restart")).and_then(boolean) == Some(true);
                if let Some(required) = spec.and_then(|s| s.get_node("required"))
                    && boolean(required) == Some(false)
                {
                    imported.unmapped(
                        line(required),
                        format!(
                            "`{name}.depends_on.{}.required: false`: in services.toml a dependency is always required",
                            dependency.as_str()
                        ),
                    );
                }
                let entry = if restart {
                    Value::Table(
                        [
                            ("condition".to_string(), Value::String(condition.into())),
                            ("restart".to_string(), Value::Boolean(true)),
                        ]
                        .into_iter()
                        .collect(),
                    )
                } else {
                    Value::String(condition.into())
                };
                table.insert(dependency.as_str().to_string(), entry);
            }
        }
        Node::Scalar(_) => imported.unmapped(line(value), format!("`{name}.depends_on`: not a list or a mapping")),
    }
    if !table.is_empty() {
        service.set("depends_on", Value::Table(table));
    }
}

fn healthcheck(name: &str, value: &Node, service: &mut Service, imported: &mut Imported) {
    let Some(map) = value.as_mapping() else { return };
    if map.get_node("disable").and_then(boolean) == Some(true) {
        return;
    }
    let mut health = toml::Table::new();
    for (key, v) in map.iter() {
        match key.as_str() {
            "test" => {
                let test = match v {
                    Node::Sequence(_) => yaml::list(v).unwrap_or_default(),
                    _ => vec!["CMD-SHELL".to_string(), text(v).unwrap_or_default()],
                };
                match test.split_first() {
                    Some((kind, rest)) if kind == "CMD" && !rest.is_empty() => {
                        health.insert("container_command".into(), strings(rest));
                    }
                    Some((kind, [shell])) if kind == "CMD-SHELL" => {
                        health.insert(
                            "container_command".into(),
                            strings(&["sh".into(), "-c".into(), shell.clone()]),
                        );
                    }
                    Some((kind, _)) if kind == "NONE" => return,
                    _ => imported.unmapped(line(v), format!("`{name}.healthcheck.test`: not CMD or CMD-SHELL")),
                }
            }
            "interval" | "timeout" | "start_period" => {
                if let Some(d) = text(v) {
                    health.insert(key.as_str().into(), Value::String(d));
                }
            }
            "retries" => {
                if let Some(n) = number(v) {
                    health.insert("retries".into(), Value::Integer(n));
                }
            }
            other => imported.unmapped(line(v), format!("`{name}.healthcheck.{other}`")),
        }
    }
    if health.contains_key("container_command") {
        service.set("health", Value::Table(health));
    }
}

/// A command line split on spaces, as Compose splits a string `command`; `None` when it
/// has quotes, escapes or variables, which need a real shell-words parser.
fn split(command: &str) -> Option<Vec<String>> {
    if command.contains(['"', '\'', '\\', '$']) {
        return None;
    }
    Some(command.split_whitespace().map(str::to_string).collect())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn services_become_containers_with_their_conditions_and_checks() {
        let doc = yaml::parse(
            "services:\n  db:\n    image: postgres:16\n    environment:\n      POSTGRES_PASSWORD: dev\n    ports:\n      - \"127.0.0.1:5432:5432\"\n      - 9000\n    healthcheck:\n      test: [\"CMD\", \"pg_isready\", \"-U\", \"postgres\"]\n      interval: 2s\n      retries: 10\n    volumes:\n      - pgdata:/var/lib/postgresql/data\n  web:\n    build: .\n    command: serve --port 80\n    depends_on:\n      db:\n        condition: service_healthy\n        restart: true\n    restart: on-failure:3\n    networks: [front]\n    deploy:\n      replicas: 2\nvolumes:\n  pgdata: {}\nnetworks:\n  front: {}\n",
        )
        .unwrap();
        let imported = import(&doc, "shop");
        let text = imported.render("compose.yaml");
        for expected in [
            "[services.db]\nimage = \"postgres:16\"\nenv = { POSTGRES_PASSWORD = \"dev\" }\nports = [\"5432:5432\"]\n",
            "health = { container_command = [\"pg_isready\", \"-U\", \"postgres\"], interval = \"2s\", retries = 10 }",
            "volumes = [\"pgdata:/var/lib/postgresql/data\"]",
            "command = [\"serve\", \"--port\", \"80\"]",
            "depends_on = { db = { condition = \"healthy\", restart = true } }",
            "restart = \"on-failure\"\nmax_restarts = 3",
            "replicas = 2",
            "image = \"shop-web\"",
            "line 8: `db.ports`: `9000`",
            "line 16: `web.build`",
            "`web.networks`",
            "line 28: `networks`",
        ] {
            assert!(text.contains(expected), "{expected} missing:\n{text}");
        }
        let parsed: toml::Table = toml::from_str(&text).unwrap();
        assert_eq!(parsed["services"]["web"]["replicas"].as_integer(), Some(2));
    }
}
