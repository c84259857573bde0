//! What an importer makes of a Procfile, a compose file or a process-compose file: the
//! services as services.toml keys, the project's environment, and everything that did
//! not map, each with the line of the source it came from, rendered as services.toml.

use toml::Value;

/// One service: its keys in the order they are written.
#[derive(Debug, Default)]
pub struct Service {
    pub name: String,
    pub keys: Vec<(String, Value)>,
}

impl Service {
    pub fn new(name: &str) -> Service {
        Service {
            name: name.to_string(),
            keys: Vec::new(),
        }
    }

    pub fn set(&mut self, key: &str, value: impl Into<Value>) {
        self.keys.retain(|(k, _)| k != key);
        self.keys.push((key.to_string(), value.into()));
    }

    pub fn has(&self, key: &str) -> bool {
        self.keys.iter().any(|(k, _)| k == key)
    }
}

/// A key of the source that services.toml has no place for, or a value it cannot take.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Unmapped {
    pub line: usize,
    pub what: String,
}

#[derive(Debug, Default)]
pub struct Imported {
    pub project_env: Vec<(String, String)>,
    /// The `.env` beside the source, which foreman and Compose read by themselves.
    pub project_env_file: Option<String>,
    pub services: Vec<Service>,
    pub unmapped: Vec<Unmapped>,
}

impl Imported {
    pub fn unmapped(&mut self, line: usize, what: impl Into<String>) {
        self.unmapped.push(Unmapped {
            line,
            what: what.into(),
        });
    }

    /// services.toml text: a header naming the source, `[project] env`, each service,
    /// and what did not map as comments at the end.
    pub fn render(&self, source: &str) -> String {
        let source = comment(source);
        let mut out = if self.unmapped.is_empty() {
            format!("# Imported from {source} by `import`: check it with `check`.\n")
        } else {
            format!(
                "# Imported from {source} by `import`: check it with `check`, and see the end of\n# the file for what did not map.\n"
            )
        };
        if !self.project_env.is_empty() || self.project_env_file.is_some() {
            out.push_str("\n[project]\n");
            if let Some(file) = &self.project_env_file {
                out.push_str(&format!("env_file = {}\n", Value::String(file.clone())));
            }
            if !self.project_env.is_empty() {
                out.push_str(&format!("env = {}\n", inline(&string_table(&self.project_env))));
            }
        }
        for service in &self.services {
            out.push_str(&format!("\n[services.{}]\n", key(&service.name)));
            for (k, v) in &service.keys {
                out.push_str(&format!("{} = {}\n", key(k), inline(v)));
            }
        }
        if !self.unmapped.is_empty() {
            out.push_str(&format!("\n# Not mapped ({source}):\n"));
            for u in &self.unmapped {
                out.push_str(&format!("#   line {}: {}\n", u.line, comment(&u.what)));
            }
        }
        out
    }
}

/// Text of the source in a comment: on one line, whatever it holds (a newline would end
/// the comment and let the source write services.toml), and without control bytes,
/// which TOML refuses in comments.
fn comment(text: &str) -> String {
    text.chars()
        .flat_map(|c| {
            let escaped: Vec<char> = if c.is_control() {
                c.escape_default().collect()
            } else {
                vec![c]
            };
            escaped
        })
        .collect()
}

/// A key as TOML writes it: bare when it can be.
fn key(name: &str) -> String {
    if !name.is_empty() && name.chars().all(|c| c.is_ascii_alphanumeric() || c == '_' || c == '-') {
        name.to_string()
    } else {
        Value::String(name.to_string()).to_string()
    }
}

/// A value on one line: arrays and tables inline.
pub fn inline(value: &Value) -> String {
    match value {
        Value::Array(items) => format!("[{}]", items.iter().map(inline).collect::<Vec<_>>().join(", ")),
        Value::Table(table) => {
            let pairs: Vec<String> = table
                .iter()
                .map(|(k, v)| format!("{} = {}", key(k), inline(v)))
                .collect();
            if pairs.is_empty() {
                "{}".to_string()
            } else {
                format!("{{ {} }}", pairs.join(", "))
            }
        }
        other => other.to_string(),
    }
}

/// A table of string values, in order.
pub fn string_table(pairs: &[(String, String)]) -> Value {
    Value::Table(
        pairs
            .iter()
            .map(|(k, v)| (k.clone(), Value::String(v.clone())))
            .collect(),
    )
}

/// An array of strings.
pub fn strings(items: &[String]) -> Value {
    Value::Array(items.iter().cloned().map(Value::String).collect())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn renders_tables_inline_and_lists_what_did_not_map() {
        let mut imported = Imported::default();
        imported.project_env.push(("A".into(), "1 2".into()));
        let mut web = Service::new("web");
        web.set("command", "python3 -m http.server $PORT");
        web.set("port", "auto");
        web.set("depends_on", string_table(&[("db".into(), "healthy".into())]));
        imported.services.push(web);
        imported.unmapped(3, "`web.networks`: services.toml has no networks");
        let text = imported.render("compose.yaml");
        assert!(text.contains("[project]\nenv = { A = \"1 2\" }\n"), "{text}");
        assert!(
            text.contains("[services.web]\ncommand = \"python3 -m http.server $PORT\"\nport = \"auto\"\ndepends_on = { db = \"healthy\" }\n"),
            "{text}"
        );
        assert!(text.contains("#   line 3: `web.networks`"), "{text}");
        let parsed: toml::Table = toml::from_str(&text).unwrap();
        assert_eq!(parsed["services"]["web"]["depends_on"]["db"].as_str(), Some("healthy"));
    }

    #[test]
    fn text_of_the_source_cannot_leave_its_comment() {
        let mut imported = Imported::default();
        imported.services.push(Service::new("web"));
        imported.unmapped(
            4,
            "`x\n[services.evil]\ncommand = \"touch pwned\"\n#`\u{1b}]2;title\u{7}\r",
        );
        let text = imported.render("Procfile\n[services.evil2]\ncommand = \"id\"");
        let parsed: toml::Table = toml::from_str(&text).unwrap();
        let services: Vec<&String> = parsed["services"].as_table().unwrap().keys().collect();
        assert_eq!(services, ["web"], "{text}");
        assert!(!text.contains('\u{1b}') && !text.contains('\r'), "{text:?}");
    }
}
