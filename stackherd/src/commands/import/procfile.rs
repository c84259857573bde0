//! A Procfile (foreman, honcho, Heroku): `name: command` per line. A command that
//! names `$PORT` gets a port chosen at start, as foreman hands each process one.

use super::model::{Imported, Service, string_table};

pub fn import(text: &str) -> Imported {
    let mut imported = Imported::default();
    let mut seen = std::collections::HashSet::new();
    for (index, raw) in text.lines().enumerate() {
        let line = index.saturating_add(1);
        let trimmed = raw.trim();
        if trimmed.is_empty() || trimmed.starts_with('#') {
            continue;
        }
        let Some((name, command)) = trimmed.split_once(':') else {
            imported.unmapped(line, format!("`{trimmed}`: not `name: command`"));
            continue;
        };
        let (name, command) = (name.trim(), command.trim());
        let valid = !name.is_empty() && name.chars().all(|c| c.is_ascii_alphanumeric() || c == '-' || c == '_');
        if !valid || command.is_empty() {
            imported.unmapped(line, format!("`{trimmed}`: not `name: command`"));
            continue;
        }
        if !seen.insert(name.to_string()) {
            imported.unmapped(line, format!("`{name}` a second time: the first one is kept"));
            continue;
        }
        let mut service = Service::new(name);
        service.set("command", command);
        if command.contains("$PORT") || command.contains("${PORT") {
            service.set("port", "auto");
        }
        imported.services.push(service);
    }
    // Heroku's release phase (migrations) runs once before the processes start: a
    // one-shot job the others wait for.
    if imported.services.iter().any(|s| s.name == "release") {
        for service in imported.services.iter_mut().filter(|s| s.name != "release") {
            service.set(
                "depends_on",
                string_table(&[("release".to_string(), "completed".to_string())]),
            );
        }
    }
    imported
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn each_line_is_a_service_and_port_users_get_one() {
        let imported = import(
            "# the app\nweb: gunicorn app:app --bind 0.0.0.0:$PORT\nworker:  celery -A app worker\n\nnonsense\nweb: again\nrelease: ./migrate\n",
        );
        let names: Vec<&str> = imported.services.iter().map(|s| s.name.as_str()).collect();
        assert_eq!(names, ["web", "worker", "release"]);
        let text = imported.render("Procfile");
        assert!(
            text.contains(
                "[services.worker]\ncommand = \"celery -A app worker\"\ndepends_on = { release = \"completed\" }\n"
            ),
            "{text}"
        );
        assert!(imported.services[0].has("port") && !imported.services[1].has("port"));
        assert_eq!(
            imported.services[0].keys[0].1.as_str(),
            Some("gunicorn app:app --bind 0.0.0.0:$PORT")
        );
        let lines: Vec<usize> = imported.unmapped.iter().map(|u| u.line).collect();
        assert_eq!(lines, [5, 6]);
    }
}
