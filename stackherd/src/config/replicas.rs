//! `replicas = 3`: a service run as several instances, `api.1`, `api.2`, `api.3`, each
//! read from the same table with `${XTASK_REPLICA}` set to its number (and given it in
//! its environment), so that each can take its own port
//! (`port = "${API_BASE:-8080} + ${XTASK_REPLICA}"`). A dependency on `api` is a
//! dependency on every replica.

use std::borrow::Cow;
use std::path::Path;

use toml::Spanned;
use toml::de::DeValue;

use super::read::{self, Diagnostics};
use super::service::{ParsedService, parse_service};
use super::{Dependency, Project};

/// The most replicas of one service.
pub const MAX_REPLICAS: u32 = 64;

/// The instances of the service table `name`: itself, or one per replica.
pub(super) fn parse_instances(
    name: &Spanned<Cow<'_, str>>,
    value: &read::Value<'_>,
    project: Option<&Project>,
    root: &Path,
    diags: &mut Diagnostics,
) -> Vec<ParsedService> {
    let count = match replicas(value, name.get_ref(), diags) {
        Some(count) if count > 1 => count,
        _ => {
            diags.vars.set_fixed(Vec::new());
            return parse_service(name, value, project, root, diags).into_iter().collect();
        }
    };
    let mut instances = Vec::new();
    for replica in 1..=count {
        let instance = Spanned::new(name.span(), Cow::Owned(format!("{}.{replica}", name.get_ref())));
        let fixed = vec![("XTASK_REPLICA".to_string(), replica.to_string())];
        // The first replica's problems are the table's; a later one adds only problems
        // in other places (a port sum that overflows for it alone).
        let parsed = if replica == 1 {
            diags.vars.set_fixed(fixed.clone());
            parse_service(&instance, value, project, root, diags)
        } else {
            let mut own = Diagnostics {
                items: Vec::new(),
                vars: diags.vars.clone(),
                compose_names: diags.compose_names,
                chosen_ports: diags.chosen_ports.clone(),
                hooks: diags.hooks,
            };
            own.vars.set_fixed(fixed.clone());
            let parsed = parse_service(&instance, value, project, root, &mut own);
            for item in own.items {
                if !diags.items.iter().any(|d| d.span == item.span) {
                    diags.items.push(item);
                }
            }
            parsed
        };
        if let Some(mut parsed) = parsed {
            parsed.service.group = Some(name.get_ref().to_string());
            parsed.service.env.extend(fixed);
            instances.push(parsed);
        }
    }
    diags.vars.set_fixed(Vec::new());
    instances
}

/// `replicas`, when the table sets it: 1 to `MAX_REPLICAS`.
fn replicas(value: &read::Value<'_>, service: &str, diags: &mut Diagnostics) -> Option<u32> {
    let DeValue::Table(table) = value.get_ref() else {
        return None;
    };
    let value = table.get("replicas")?;
    let what = format!("`replicas` in [services.{service}]");
    match read::as_integer(value, &what, diags).map(u32::try_from) {
        Some(Ok(n)) if (1..=MAX_REPLICAS).contains(&n) => Some(n),
        Some(_) => {
            diags.error(value.span(), format!("{what} must be from 1 to {MAX_REPLICAS}"));
            None
        }
        None => None,
    }
}

/// Dependencies on a replicated service become dependencies on each of its replicas.
pub(super) fn expand_dependencies(services: &mut [ParsedService]) {
    let groups: Vec<(String, Vec<String>)> = {
        let mut groups: Vec<(String, Vec<String>)> = Vec::new();
        for parsed in services.iter() {
            if let Some(group) = &parsed.service.group {
                match groups.iter_mut().find(|(name, _)| name == group) {
                    Some((_, members)) => members.push(parsed.service.name.clone()),
                    None => groups.push((group.clone(), vec![parsed.service.name.clone()])),
                }
            }
        }
        groups
    };
    for parsed in services.iter_mut() {
        let mut deps = Vec::new();
        let mut spans = Vec::new();
        for (dep, span) in parsed.service.depends_on.iter().zip(&parsed.dependency_spans) {
            match groups.iter().find(|(name, _)| *name == dep.service) {
                Some((_, members)) => {
                    for member in members {
                        deps.push(Dependency {
                            service: member.clone(),
                            ..dep.clone()
                        });
                        spans.push(span.clone());
                    }
                }
                None => {
                    deps.push(dep.clone());
                    spans.push(span.clone());
                }
            }
        }
        parsed.service.depends_on = deps;
        parsed.dependency_spans = spans;
    }
}
