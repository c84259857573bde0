//! One `[services.NAME]` table: its command, environment, ports, build step, container
//! settings and the rest, each value checked where it stands.

use std::path::Path;

use toml::Spanned;

use super::health::{parse_dependencies, parse_health};
use super::policies::parse_policies;
use super::read::parse_command;
use super::read::{self, Diagnostics, TableReader};
use super::watch;
use super::{
    BUILD_KEYS, Build, CommandLine, Container, Health, MAX_NAME, Probe, Project, SERVICE_KEYS, Service,
    valid_service_name, vars,
};

/// A service together with the spans that the cross-service checks point at.
pub(super) struct ParsedService {
    pub service: Service,
    pub port_spans: Vec<std::ops::Range<usize>>,
    pub dependency_spans: Vec<std::ops::Range<usize>>,
    pub name_span: std::ops::Range<usize>,
}

pub(super) fn parse_service(
    name: &Spanned<std::borrow::Cow<'_, str>>,
    value: &read::Value<'_>,
    project: Option<&Project>,
    root: &Path,
    diags: &mut Diagnostics,
) -> Option<ParsedService> {
    let context = format!("[services.{}]", name.get_ref());
    check_name(name, diags);
    let table = read::as_table(value, &format!("`services.{}`", name.get_ref()), diags)?;
    let reader = TableReader::new(table, context.clone(), SERVICE_KEYS);
    reader.report_unknown(diags);
    // Read first: the other values may name its variables.
    let service_file = read_env_files(&reader, root, diags);
    diags.vars.set_service_file(service_file);

    // Read before the values that may name `${PORT}`: the service's first port.
    let auto_port = is_auto(reader.get("port"));
    let (mapped_ports, port_spans) = parse_ports(&reader, name.get_ref(), diags);
    let ports: Vec<u16> = mapped_ports.iter().map(|(host, _)| *host).collect();
    if let Some(port) = ports.first() {
        diags.vars.add_fixed("PORT", port.to_string());
    }

    let image = reader.string("image", diags);
    let command = read_command(&reader, name, &context, image.is_some(), diags);
    let cwd = reader
        .string("cwd", diags)
        .map_or_else(|| root.to_path_buf(), |c| root.join(c.get_ref()));
    let mut env = service_env(&reader, project, diags);
    // What the user wrote, before the PORT xtask adds: a build's identity and
    // environment, so that services with ports share one build (issue 25).
    let declared_env = env.clone();
    // Its port as PORT, as foreman and Heroku give it, unless `env` says otherwise (a
    // container's port inside differs from the host's: it gets none).
    if let Some(port) = ports.first().filter(|_| image.is_none())
        && !env.iter().any(|(name, _)| name == "PORT")
    {
        env.insert(0, ("PORT".to_string(), port.to_string()));
    }
    let (depends_on, dependency_spans) = match reader.get("depends_on") {
        Some(value) => parse_dependencies(value, &reader.what("depends_on"), diags),
        None => (Vec::new(), Vec::new()),
    };
    let health = read_health(&reader, &context, ports.first().copied(), diags);
    let policies = parse_policies(&reader, project, diags);
    let pid_file = reader.string("pid_file", diags).map(|p| cwd.join(p.get_ref()));
    let build = reader
        .get("build")
        .and_then(|v| parse_build(v, &context, &cwd, &declared_env, root, diags));
    let build_timeout = reader.duration("build_timeout", diags).map(Spanned::into_inner);
    let container = parse_container(&reader, image, &command, (&mapped_ports, &port_spans), root, diags);
    let watch = watch::parse_watch(&reader, diags);
    let restart_with = watch::parse_restart_with(&reader, diags);
    let tty = parse_tty(&reader, project, container.is_some(), diags);
    let profiles = super::profiles::parse_profiles(&reader, diags);
    let disabled = read::boolean(&reader, "disabled", diags).unwrap_or(false);
    Some(ParsedService {
        service: Service {
            name: name.get_ref().to_string(),
            command,
            cwd,
            env,
            ports,
            depends_on,
            health,
            stop_signal: policies.stop_signal,
            stop_timeout: policies.stop_timeout,
            stop_command: policies.stop_command,
            restart: policies.restart,
            max_restarts: policies.max_restarts,
            restart_delay: policies.restart_delay,
            restart_window: policies.restart_window,
            success_exit_codes: policies.success_exit_codes,
            startup_delay: policies.startup_delay,
            pid_file,
            build,
            build_timeout,
            container,
            watch,
            restart_with,
            tty,
            profiles,
            disabled,
            group: None,
            auto_port,
            log_rotation: super::rotation::parse_log_rotation(&reader, diags)
                .over(project.map(|p| p.log_rotation).unwrap_or_default()),
        },
        port_spans,
        dependency_spans,
        name_span: name.span(),
    })
}

fn check_name(name: &Spanned<std::borrow::Cow<'_, str>>, diags: &mut Diagnostics) {
    if !valid_service_name(name.get_ref()) {
        diags.error_with_help(
            name.span(),
            format!("invalid service name `{}`", name.get_ref()),
            format!(
                "use at most {MAX_NAME} letters, digits, `-`, `_` and `.`, starting with a letter or digit: the name is used in file names"
            ),
        );
    }
}

/// `health`; without one, a service with a port is healthy once it listens.
fn read_health(
    reader: &TableReader<'_, '_>,
    context: &str,
    port: Option<u16>,
    diags: &mut Diagnostics,
) -> Option<Health> {
    match reader.get("health") {
        Some(value) => parse_health(value, context, diags),
        None => port.map(|port| Health::default_for(Probe::Port(port))),
    }
}

/// The service's command: a container's may be left out (the image's own); a
/// process's missing or bad one is reported, and the service still takes part in the
/// cross-service checks so that their problems are reported in the same run.
fn read_command(
    reader: &TableReader<'_, '_>,
    name: &Spanned<std::borrow::Cow<'_, str>>,
    context: &str,
    container: bool,
    diags: &mut Diagnostics,
) -> CommandLine {
    match reader.get("command") {
        Some(value) => parse_command(value, &reader.what("command"), diags),
        None if container => Some(CommandLine::Exec(Vec::new())),
        None => {
            diags.error_with_help(
                name.span(),
                format!("{context} has no `command`"),
                "add `command = \"...\"` (run by sh -c) or `command = [\"program\", \"arg\"]`",
            );
            None
        }
    }
    .unwrap_or(CommandLine::Exec(Vec::new()))
}

/// The service's environment: the project's env_file and `env`, its own env_file,
/// then its `env`.
fn service_env(
    reader: &TableReader<'_, '_>,
    project: Option<&Project>,
    diags: &mut Diagnostics,
) -> Vec<(String, String)> {
    let mut env: Vec<(String, String)> = project.map_or_else(|| diags.vars.project_file().to_vec(), |p| p.env.clone());
    env.extend(diags.vars.service_file().iter().cloned());
    env.extend(parse_env(reader.get("env"), &reader.what("env"), diags));
    env
}

/// A container service's settings (with `image`); for a process service, the
/// container-only keys it wrongly has are reported.
fn parse_container(
    reader: &TableReader<'_, '_>,
    image: Option<Spanned<String>>,
    command: &CommandLine,
    (mapped_ports, port_spans): (&[(u16, u16)], &[std::ops::Range<usize>]),
    root: &Path,
    diags: &mut Diagnostics,
) -> Option<Container> {
    match image {
        Some(image) => Some(Container {
            image: image.into_inner(),
            args: match command {
                CommandLine::Exec(words) => words.clone(),
                CommandLine::Shell(line) => line.split_whitespace().map(str::to_string).collect(),
            },
            ports: mapped_ports.to_vec(),
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
            for (port, span) in mapped_ports.iter().zip(port_spans) {
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
    }
}

/// `tty`, for process services only; the project's default where a service says
/// nothing.
fn parse_tty(
    reader: &TableReader<'_, '_>,
    project: Option<&Project>,
    container: bool,
    diags: &mut Diagnostics,
) -> bool {
    let tty = read::boolean(reader, "tty", diags);
    if tty == Some(true) && container {
        diags.error_with_help(
            reader.get("tty").map(|v| v.span()).unwrap_or_default(),
            format!("{} applies to process services", reader.what("tty")),
            "a container's output reaches its log through `docker logs`; remove `tty`",
        );
    }
    !container && tty.unwrap_or(project.is_some_and(|p| p.tty))
}

/// `max_restarts`: a whole number from 0, or `"unlimited"` (`None`).
pub(super) fn parse_env(value: Option<&read::Value<'_>>, what: &str, diags: &mut Diagnostics) -> Vec<(String, String)> {
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
pub(super) fn read_env_files(
    reader: &TableReader<'_, '_>,
    root: &Path,
    diags: &mut Diagnostics,
) -> Vec<(String, String)> {
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
            Err(err) => diags.error_with_help(file.span(), err.to_string(), "fix the file or the path in `env_file`"),
        }
    }
    vars
}

/// `build = "..."`/`[...]` (in the service's `cwd`, with the environment the service
/// declares), or a table with its own `command`, `cwd` and `env`. Not the `PORT` xtask
/// gives a service: a build is one step for every service that declares the same one,
/// whatever ports they listen on; a build that needs a port declares it in its `env`.
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
    service: &str,
    diags: &mut Diagnostics,
) -> (Vec<(u16, u16)>, Vec<std::ops::Range<usize>>) {
    let mut mapped = Vec::new();
    let mut spans = Vec::new();
    if is_auto(reader.get("port")) {
        // Chosen at start and recorded; 0 until then.
        let chosen = diags.chosen_ports.get(service).copied().unwrap_or(0);
        spans.push(reader.get("port").map(|v| v.span()).unwrap_or_default());
        mapped.push((chosen, chosen));
        if reader.get("image").is_some() {
            diags.error_with_help(
                reader.get("port").map(|v| v.span()).unwrap_or_default(),
                format!("{}: \"auto\" applies to process services", reader.what("port")),
                "publish a container's port with `ports = [\"HOST:CONTAINER\"]`",
            );
        }
    } else if let Some(port) = reader.port("port", diags) {
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

/// `port = "auto"`.
fn is_auto(value: Option<&read::Value<'_>>) -> bool {
    value.is_some_and(|v| matches!(v.get_ref(), toml::de::DeValue::String(s) if s.trim() == "auto"))
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
