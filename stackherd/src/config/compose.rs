//! The services a Docker Compose file declares, so that `depends_on` may name them,
//! when the compose tool cannot be asked (`docker compose config --services` is).

/// The keys of the file's top-level `services:` block (a two-space or four-space
/// indented YAML mapping, as compose files are written), with a flow mapping on the
/// key's line (`redis: {image: x}`) or a comment after it.
pub fn services(text: &str) -> Vec<String> {
    let mut in_services = false;
    let mut indent = None;
    let mut names = Vec::new();
    for line in text.lines() {
        if line.trim().is_empty() || line.trim_start().starts_with('#') {
            continue;
        }
        let depth = line.len().saturating_sub(line.trim_start().len());
        if depth == 0 {
            in_services = line.trim_end() == "services:";
            continue;
        }
        if !in_services {
            continue;
        }
        let level = *indent.get_or_insert(depth);
        let content = line.split(" #").next().unwrap_or("").trim();
        if depth == level
            && let Some((key, _)) = content.split_once(':')
        {
            let name = key.trim().trim_matches(|c| c == '"' || c == '\'');
            if !name.is_empty() && !name.contains(char::is_whitespace) {
                names.push(name.to_string());
            }
        }
    }
    names
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn services_are_the_keys_of_the_services_block() {
        let text = "version: '3'\nservices:\n  redis:\n    image: redis\n    ports:\n      - 6379:6379\n  \"db\":\n    image: pg\nvolumes:\n  data:\n";
        assert_eq!(services(text), vec!["redis".to_string(), "db".to_string()]);
        let text = "services:\n  redis: {image: x}\n  db:  # the database\n    image: pg\n";
        assert_eq!(services(text), vec!["redis".to_string(), "db".to_string()]);
    }
}
