//! The whole-file checks: the top-level tables, `[project]`, and what spans services
//! (ports declared twice, unknown dependencies, cycles).

use std::collections::{BTreeMap, HashMap};
use std::path::Path;

use toml::de::DeTable;

use super::read::{self, Diagnostics, TableReader};
use super::replicas;
use super::service::{ParsedService, parse_env, read_env_files};
use super::{
    Config, DEFAULT_STOP_TIMEOUT, DEFAULT_WATCH_DEBOUNCE, Graph, PROJECT_KEYS, Project, Service, TOP_KEYS, compose,
};

pub(super) fn parse_document(doc: &DeTable<'_>, path: &Path, root: &Path, diags: &mut Diagnostics) -> Option<Config> {
    let top = TableReader::new(doc, "services.toml", TOP_KEYS);
    top.report_unknown(diags);
    let project = parse_project(top.get("project"), root, diags);
    if let (Some(project), Some(chosen)) = (&project, diags.hooks.chosen_ports) {
        diags.chosen_ports = chosen(&project.state_dir);
    }
    diags
        .vars
        .set_ports(declared_ports(top.get("services"), &diags.chosen_ports));
    let mut services = Vec::new();
    match top.get("services") {
        None => diags.error_with_help(
            0..0,
            "no services are declared",
            "add a table such as [services.api] with a `command`",
        ),
        Some(value) => {
            if let Some(table) = read::as_table(value, "`services`", diags) {
                if table.is_empty() {
                    diags.error_with_help(
                        value.span(),
                        "no services are declared: `[services]` is empty",
                        "add a table such as [services.api] with a `command`",
                    );
                }
                for (name, value) in table {
                    services.extend(replicas::parse_instances(name, value, project.as_ref(), root, diags));
                }
            }
        }
    }
    replicas::expand_dependencies(&mut services);
    validate_names(&services, diags);
    validate_ports(&services, diags);
    let compose = project.as_ref().map(|p| p.compose_services.clone()).unwrap_or_default();
    validate_dependencies(&services, &compose, diags);
    Some(Config {
        path: path.to_path_buf(),
        given: vec![path.to_path_buf()],
        root: root.to_path_buf(),
        project: project?,
        services: services.into_iter().map(|s| s.service).collect(),
    })
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
        abort_on_failure: false,
        watch_debounce: DEFAULT_WATCH_DEBOUNCE,
        log_rotation: Default::default(),
        tty: false,
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
    // Every service's environment, as Compose's top-level `x-` anchors or
    // process-compose's `environment` give it; not a source of `${VAR}` (the env_file
    // and the shell are, as in Compose).
    project
        .env
        .extend(parse_env(reader.get("env"), &reader.what("env"), diags));
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
    read_compose_file(&reader, root, &mut project, diags);
    project.log_rotation = super::rotation::parse_log_rotation(&reader, diags);
    if let Some(debounce) = reader.duration("watch_debounce", diags) {
        project.watch_debounce = debounce.into_inner();
    }
    if let Some(tty) = read::boolean(&reader, "tty", diags) {
        project.tty = tty;
    }
    if let Some(value) = reader.get("abort_on_failure") {
        match value.get_ref() {
            toml::de::DeValue::Boolean(abort) => project.abort_on_failure = *abort,
            _ => read::wrong_type(value, &reader.what("abort_on_failure"), "true or false", diags),
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

/// `compose_file`, and the services it declares.
fn read_compose_file(reader: &TableReader<'_, '_>, root: &Path, project: &mut Project, diags: &mut Diagnostics) {
    if let Some(file) = reader.string("compose_file", diags) {
        let path = root.join(file.get_ref());
        if path.is_file() {
            project.compose_services = diags
                .compose_names
                .and_then(|names| names(&path, &project.state_dir))
                .unwrap_or_else(|| {
                    let text = std::fs::read_to_string(&path).unwrap_or_default();
                    compose::services(&text)
                });
            project.compose_file = Some(path);
        } else {
            diags.error_with_help(
                file.span(),
                format!("compose_file {} does not exist", path.display()),
                "fix the path",
            );
        }
    }
}

/// A replica's name (`api.2`) must not be a service's of its own.
fn validate_names(services: &[ParsedService], diags: &mut Diagnostics) {
    for (i, parsed) in services.iter().enumerate() {
        let name = &parsed.service.name;
        if services.iter().take(i).any(|earlier| &earlier.service.name == name) {
            diags.error_with_help(
                parsed.name_span.clone(),
                format!("service `{name}` is declared twice (a replica of a service with `replicas` has this name)"),
                "rename the service, or change `replicas`",
            );
        }
    }
}

/// What `${port:NAME}` names: each service's `port` when it is a number, and the ports
/// chosen for `port = "auto"` (0 before the first start chooses them).
fn declared_ports(services: Option<&read::Value<'_>>, chosen: &BTreeMap<String, u16>) -> BTreeMap<String, u16> {
    let mut ports = chosen.clone();
    let Some(toml::de::DeValue::Table(services)) = services.map(toml::Spanned::get_ref) else {
        return ports;
    };
    for (name, table) in services {
        let toml::de::DeValue::Table(table) = table.get_ref() else {
            continue;
        };
        match table.get("port").map(toml::Spanned::get_ref) {
            Some(toml::de::DeValue::Integer(n)) => {
                if let Ok(port) = n.as_str().parse::<u16>() {
                    ports.insert(name.get_ref().to_string(), port);
                }
            }
            Some(toml::de::DeValue::String(s)) if s.trim() == "auto" => {
                ports.entry(name.get_ref().to_string()).or_insert(0);
            }
            _ => {}
        }
    }
    ports
}

fn validate_ports(services: &[ParsedService], diags: &mut Diagnostics) {
    let mut owners: HashMap<u16, &str> = HashMap::new();
    for parsed in services {
        // A port still to be chosen (`auto`, 0) is nobody's yet.
        let ports = parsed
            .service
            .ports
            .iter()
            .zip(&parsed.port_spans)
            .filter(|(port, _)| **port != 0);
        for (port, span) in ports {
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
            if *dep == parsed.service.name {
                graph_ok = false;
                diags.error_with_help(
                    span.clone(),
                    format!("service `{dep}` depends on itself"),
                    "remove it from its own `depends_on`",
                );
                continue;
            }
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
        let Some(first) = cycle.first() else {
            return;
        };
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
