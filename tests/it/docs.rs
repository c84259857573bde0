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

/// README's first set-up command, on a copy of the repository: `make start-bg` builds
/// the demo and brings its stack up, healthy; `make status` shows it; `make stop` takes
/// it down. (The binary is the suite's, as in the make tests; ports are free ones.)
#[test]
fn readme_set_up_brings_the_demo_stack_up_and_down() {
    let [store, api] = free_ports::<2>();
    let p = Project::new("")
        .with_env("DEMO_STORE_PORT", &store.to_string())
        .with_env("DEMO_API_PORT", &api.to_string());
    let files = std::process::Command::new("git")
        .args(["ls-files", "-z"])
        .current_dir(repository())
        .output()
        .expect("git ls-files");
    assert!(files.status.success(), "the repository is not a git checkout");
    for file in String::from_utf8_lossy(&files.stdout)
        .split('\0')
        .filter(|f| !f.is_empty())
    {
        let to = p.path(file);
        std::fs::create_dir_all(to.parent().expect("a parent")).expect("mkdir");
        if let Err(err) = std::fs::copy(repository().join(file), &to) {
            // A file deleted in the work tree but not yet in the index.
            assert_eq!(err.kind(), std::io::ErrorKind::NotFound, "copy {file}: {err}");
        }
    }
    let bin = crate::harness::xtask_bin().display().to_string();
    let make = |target: &str| {
        p.program_from(
            ".",
            "make",
            &["--no-print-directory", &format!("STACKHERD={bin}"), "-o", &bin, target],
        )
    };
    make("start-bg").assert_ok().assert_contains("3 service(s) up in");
    let status = make("status");
    status.assert_ok();
    for service in ["store", "api", "worker"] {
        assert!(
            status
                .stdout
                .lines()
                .any(|l| l.split_whitespace().take(2).eq([service, "running"])),
            "{service} does not run:\n{status}"
        );
    }
    make("stop")
        .assert_ok()
        .assert_contains("no process of this project is left");
    p.assert_nothing_running();
}
