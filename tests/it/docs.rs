//! The documentation tells the truth: README stays short, its services.toml passes
//! `check`, the recipes are the stack the tests run, and every link leads somewhere.

use std::path::{Path, PathBuf};

use crate::harness::{Project, free_ports};

fn repository() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("..")
}

fn read(relative: &str) -> String {
    std::fs::read_to_string(repository().join(relative)).unwrap_or_else(|err| panic!("read {relative}: {err}"))
}

/// The fenced blocks of `language` in a Markdown text.
fn blocks(text: &str, language: &str) -> Vec<String> {
    let fence = format!("```{language}\n");
    text.split(fence.as_str())
        .skip(1)
        .filter_map(|rest| rest.split("```").next())
        .map(str::to_string)
        .collect()
}

#[test]
fn readme_is_short_and_its_services_toml_passes_check() {
    let readme = read("README.md");
    let lines = readme.lines().count();
    assert!(lines < 200, "README has {lines} lines");
    let toml = blocks(&readme, "toml");
    assert_eq!(toml.len(), 1, "README's services.toml example");
    // On free ports: another test, or the machine, may hold the example's.
    let [cache, api] = free_ports::<2>();
    assert!(toml[0].contains("6379") && toml[0].contains("8080"), "{}", toml[0]);
    let p = Project::new(
        &toml[0]
            .replace("6379", &cache.to_string())
            .replace("8080", &api.to_string()),
    );
    p.xtask(&["check"]).assert_ok().assert_contains("all checks passed");
}

#[test]
fn the_recipes_are_the_stack_the_tests_run() {
    let recipes = read("docs/recipes.md");
    let team = read("tests/stacks/team/services.toml");
    let blocks = blocks(&recipes, "toml");
    assert!(blocks.len() >= 5, "{} recipes", blocks.len());
    // The last one, a compose file, is the shape of tests/it/containers.rs.
    for block in blocks.iter().take(blocks.len() - 1) {
        for piece in block.split("\n\n") {
            assert!(
                team.contains(piece.trim_end()),
                "a recipe the team stack does not run:\n{piece}"
            );
        }
    }
}

/// Headings as GitHub makes anchors of them.
fn anchors(text: &str) -> Vec<String> {
    text.lines()
        .filter(|l| l.starts_with('#'))
        .map(|l| {
            l.trim_start_matches('#')
                .trim()
                .to_lowercase()
                .chars()
                .filter(|c| c.is_alphanumeric() || *c == '-' || *c == ' ' || *c == '_')
                .map(|c| if c == ' ' { '-' } else { c })
                .collect()
        })
        .collect()
}

#[test]
fn every_link_of_the_documentation_leads_somewhere() {
    let link = regex::Regex::new(r"\]\(([^)\s]+)\)").expect("regex");
    let mut broken = Vec::new();
    for file in [
        "README.md",
        "ARCHITECTURE.md",
        "docs/adopting.md",
        "docs/recipes.md",
        "docs/commands.md",
        "docs/reference.md",
        "docs/design.md",
        "docs/benchmark.md",
    ] {
        let text = read(file);
        let dir = repository().join(file).parent().expect("a directory").to_path_buf();
        for found in link.captures_iter(&text) {
            let target = &found[1];
            if target.starts_with("http") {
                continue;
            }
            let (path, anchor) = target.split_once('#').unwrap_or((target, ""));
            let (exists, headings) = if path.is_empty() {
                (true, anchors(&text))
            } else {
                let linked = dir.join(path);
                (
                    linked.exists(),
                    anchors(&std::fs::read_to_string(&linked).unwrap_or_default()),
                )
            };
            if !exists || (!anchor.is_empty() && !headings.iter().any(|h| h == anchor)) {
                broken.push(format!("{file}: {target}"));
            }
        }
    }
    assert!(broken.is_empty(), "links that lead nowhere:\n{}", broken.join("\n"));
}
