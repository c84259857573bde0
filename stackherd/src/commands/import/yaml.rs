//! Reading YAML with the line of every node (marked-yaml), for the importers: values
//! as the strings, lists and tables services.toml wants.

use marked_yaml::Node;
use marked_yaml::types::MarkedMappingNode;

/// The parsed document, or why it cannot be read. Anchors and aliases (`<<: *base`) are
/// not read: the compose tool expands them (`docker compose config`).
pub fn parse(text: &str) -> Result<MarkedMappingNode, String> {
    // Duplicate keys are refused, as Compose refuses them: which one counts is a guess.
    let options = marked_yaml::LoaderOptions::default().error_on_duplicate_keys(true);
    let node = marked_yaml::parse_yaml_with_options(0, text, options).map_err(|err| match err {
        marked_yaml::LoadError::UnexpectedAnchor(at) => format!(
            "line {}: YAML anchors and aliases are not read; expand them first (`docker compose config > flat.yaml`, then import flat.yaml)",
            at.line()
        ),
        other => other.to_string(),
    })?;
    node.as_mapping()
        .cloned()
        .ok_or_else(|| "the top level is not a mapping".to_string())
}

/// The line a node starts on (1 for a node without a position).
pub fn line(node: &Node) -> usize {
    node.span().start().map_or(1, |m| m.line())
}

/// The line a mapping's key is on.
pub fn key_line(key: &marked_yaml::types::MarkedScalarNode) -> usize {
    key.span().start().map_or(1, |m| m.line())
}

/// A scalar's text.
pub fn text(node: &Node) -> Option<String> {
    node.as_scalar().map(|s| s.as_str().to_string())
}

/// A list of scalars, or one scalar as a list of one.
pub fn list(node: &Node) -> Option<Vec<String>> {
    match node {
        Node::Scalar(s) => Some(vec![s.as_str().to_string()]),
        Node::Sequence(items) => items.iter().map(text).collect(),
        Node::Mapping(_) => None,
    }
}

/// An environment: a mapping (`KEY: value`) or a list of `KEY=value`; a `KEY` without
/// a value (taken from the shell by Compose) is returned apart.
pub fn env(node: &Node) -> (Vec<(String, String)>, Vec<String>) {
    let mut pairs = Vec::new();
    let mut bare = Vec::new();
    match node {
        Node::Mapping(map) => {
            for (k, v) in map.iter() {
                // `KEY:` (null, read as an empty scalar) takes its value from the shell.
                match text(v) {
                    Some(v) if !v.is_empty() && v != "null" && v != "~" => pairs.push((k.as_str().to_string(), v)),
                    _ => bare.push(k.as_str().to_string()),
                }
            }
        }
        Node::Sequence(items) => {
            for item in items.iter().filter_map(text) {
                match item.split_once('=') {
                    Some((k, v)) => pairs.push((k.to_string(), v.to_string())),
                    None => bare.push(item),
                }
            }
        }
        Node::Scalar(_) => {}
    }
    (pairs, bare)
}

/// Seconds (a number) as a services.toml duration.
pub fn seconds(node: &Node) -> Option<String> {
    let value: f64 = text(node)?.trim().parse().ok()?;
    if value.is_finite() && value >= 0.0 {
        Some(if value.fract() == 0.0 {
            format!("{value:.0}s")
        } else {
            format!("{}ms", (value * 1000.0).round())
        })
    } else {
        None
    }
}

/// A whole number.
pub fn number(node: &Node) -> Option<i64> {
    text(node)?.trim().parse().ok()
}

/// A YAML boolean.
pub fn boolean(node: &Node) -> Option<bool> {
    node.as_scalar().and_then(|s| s.as_bool())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_environments_lists_and_lines() {
        let doc = parse("a:\n  env:\n    - A=1\n    - B\n  m:\n    X: 'y'\n    Z: null\n  l: one\n  s: 1.5\n").unwrap();
        let a = doc.get_node("a").unwrap().as_mapping().unwrap();
        assert_eq!(
            env(a.get_node("env").unwrap()),
            (vec![("A".into(), "1".into())], vec!["B".into()])
        );
        assert_eq!(
            env(a.get_node("m").unwrap()),
            (vec![("X".into(), "y".into())], vec!["Z".into()])
        );
        assert_eq!(list(a.get_node("l").unwrap()), Some(vec!["one".to_string()]));
        assert_eq!(seconds(a.get_node("s").unwrap()).as_deref(), Some("1500ms"));
        assert_eq!(line(a.get_node("l").unwrap()), 8);
        let anchors = parse("x: &a {b: 1}\ny: *a\n").unwrap_err();
        assert!(anchors.contains("docker compose config"), "{anchors}");
    }
}
