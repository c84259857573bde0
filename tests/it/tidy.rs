//! Tidy checks: conventions that keep the code base navigable, checked as tests.

use std::path::{Path, PathBuf};

fn workspace() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .expect("workspace root")
        .to_path_buf()
}

fn rust_files(dir: &Path) -> Vec<PathBuf> {
    let mut files = Vec::new();
    for entry in std::fs::read_dir(dir).expect("read dir").flatten() {
        let path = entry.path();
        if path.is_dir() {
            files.extend(rust_files(&path));
        } else if path.extension().is_some_and(|e| e == "rs") {
            files.push(path);
        }
    }
    files
}

#[test]
fn every_module_says_what_it_owns() {
    let root = workspace();
    let missing: Vec<PathBuf> = ["stackherd/src", "xtask/src", "tests", "demo/src"]
        .iter()
        .flat_map(|d| rust_files(&root.join(d)))
        .filter(|f| !std::fs::read_to_string(f).unwrap_or_default().starts_with("//!"))
        .collect();
    assert!(missing.is_empty(), "files without a `//!` first line: {missing:?}");
}

#[test]
fn tests_wait_by_polling_not_by_sleeping() {
    let harness = Path::new(file!()).with_file_name("harness.rs");
    let offenders: Vec<PathBuf> = rust_files(&workspace().join("tests/it"))
        .into_iter()
        .filter(|f| !f.ends_with(&harness) && !f.ends_with("tidy.rs"))
        .filter(|f| {
            std::fs::read_to_string(f)
                .unwrap_or_default()
                .contains("thread::sleep(")
        })
        .collect();
    assert!(
        offenders.is_empty(),
        "tests that sleep instead of `wait_for`: {offenders:?}"
    );
}

#[test]
fn makefile_targets_match_the_cli() {
    use clap::CommandFactory;
    let cli = stackherd::Cli::command();
    let commands: Vec<&str> = cli
        .get_subcommands()
        .filter(|c| !c.is_hide_set())
        .map(|c| c.get_name())
        .collect();
    // The fragment a team includes has the commands' targets; this repository's
    // Makefile adds its own `help` and `test`.
    let fragment = std::fs::read_to_string(workspace().join("stackherd/make/stackherd.mk")).expect("read the fragment");
    let makefile = std::fs::read_to_string(workspace().join("Makefile")).expect("read Makefile");
    let prefixed = "$(STACKHERD_PREFIX)";
    let targets: Vec<&str> = fragment
        .lines()
        .filter_map(|l| l.strip_prefix(prefixed))
        .chain(makefile.lines().filter(|l| !l.starts_with(['\t', '#', '.', ' ', '$'])))
        .filter_map(|l| l.split_once(':'))
        .filter(|(_, rest)| !rest.starts_with('='))
        .map(|(target, _)| target.trim())
        .collect();
    // `init` and `import` wire a repository once, from the binary or the alias; a
    // team's Makefile may well have an `init` of its own.
    for command in commands.iter().filter(|c| !["init", "import"].contains(*c)) {
        assert!(
            targets.contains(command),
            "the CLI has `{command}` but the Makefile has no such target"
        );
    }
    for target in &targets {
        let extra = ["stop-force", "test", "help"];
        assert!(
            commands.contains(target) || extra.contains(target),
            "the Makefile has `{target}` but the CLI has no such command"
        );
    }
}

/// The Makefile rebuilds xtask when any of its sources changed: its wildcard, which
/// stops at a fixed depth, sees every source file.
#[test]
fn the_makefile_sees_every_source_of_the_crate() {
    let root = workspace();
    let database = std::process::Command::new("make")
        .args(["-p", "-n", "-s", "help"])
        .current_dir(&root)
        .output()
        .expect("run make");
    let text = String::from_utf8_lossy(&database.stdout);
    let listed: Vec<&str> = text
        .lines()
        .find_map(|l| l.strip_prefix("STACKHERD_SOURCES := "))
        .expect("STACKHERD_SOURCES in make's database")
        .split_whitespace()
        .collect();
    let unseen: Vec<PathBuf> = rust_files(&root.join("stackherd/src"))
        .into_iter()
        .chain(rust_files(&root.join("xtask/src")))
        .filter(|f| {
            let relative = f.strip_prefix(&root).expect("under the root");
            !listed.contains(&relative.to_string_lossy().as_ref())
        })
        .collect();
    assert!(
        unseen.is_empty(),
        "sources the Makefile's STACKHERD_SOURCES misses: {unseen:?}"
    );
    assert!(listed.len() > 10, "STACKHERD_SOURCES lists almost nothing: {listed:?}");
}

/// The library denies what can panic on input a user or the OS can cause (unwrap,
/// expect, indexing, overflowing arithmetic), an `unsafe` block without its `SAFETY:`
/// comment and a function past 80 lines: the workspace's lints, which it opts into.
#[test]
fn the_crate_denies_what_can_panic() {
    let lints = std::fs::read_to_string(workspace().join("Cargo.toml")).unwrap_or_default();
    let lints = lints.split("[workspace.lints.clippy]").nth(1).unwrap_or_default();
    for lint in [
        "unwrap_used",
        "expect_used",
        "indexing_slicing",
        "arithmetic_side_effects",
        "undocumented_unsafe_blocks",
        "too_many_lines",
    ] {
        assert!(
            lints.lines().any(|l| l.replace(' ', "") == format!("{lint}=\"deny\"")),
            "[workspace.lints.clippy] does not deny {lint}"
        );
    }
    let manifest = std::fs::read_to_string(workspace().join("stackherd/Cargo.toml")).unwrap_or_default();
    assert!(
        manifest.contains("[lints]\nworkspace = true"),
        "stackherd does not take the workspace's lints"
    );
    let clippy = std::fs::read_to_string(workspace().join("clippy.toml")).unwrap_or_default();
    assert!(clippy.contains("too-many-lines-threshold = 80"), "{clippy}");
}

/// The services.toml reference (docs/reference.md) names every key the config reads, so that a key
/// added to the code cannot go undocumented.
#[test]
fn the_services_toml_reference_names_every_key() {
    use stackherd::config::{BUILD_KEYS, DEPENDENCY_KEYS, HEALTH_KEYS, PROJECT_KEYS, SERVICE_KEYS};
    let readme = std::fs::read_to_string(workspace().join("docs/reference.md")).expect("read docs/reference.md");
    let start = readme
        .find("## services.toml reference")
        .expect("the reference section");
    let section = readme[start..].split("\n## ").next().unwrap_or("");
    let missing: Vec<&str> = [PROJECT_KEYS, SERVICE_KEYS, HEALTH_KEYS, BUILD_KEYS, DEPENDENCY_KEYS]
        .iter()
        .flat_map(|keys| keys.iter().copied())
        .filter(|key| {
            // As a key of its own, a health key, or inside an example (`{ condition = … }`).
            let forms = [
                format!("`{key}`"),
                format!("`{key} ="),
                format!("`health.{key}`"),
                format!(" {key} = "),
            ];
            !forms.iter().any(|form| section.contains(form.as_str()))
        })
        .collect();
    assert!(
        missing.is_empty(),
        "keys missing from docs/reference.md's services.toml reference: {missing:?}"
    );
}

/// `init` gives a team this repository's `[profile.xtask]`, word for word: what the
/// benchmark measures is what the team builds.
#[test]
fn init_writes_the_profile_this_workspace_builds_in() {
    let ours = std::fs::read_to_string(workspace().join("Cargo.toml")).expect("read Cargo.toml");
    let init =
        std::fs::read_to_string(workspace().join("stackherd/src/commands/init/edits.rs")).expect("read edits.rs");
    let profile = |text: &str| -> String {
        let from = text.find("[profile.xtask]\n").expect("a [profile.xtask]");
        text[from..]
            .lines()
            .take_while(|l| !l.starts_with("\"#;"))
            .collect::<Vec<_>>()
            .join("\n")
            .trim_end()
            .to_string()
    };
    assert_eq!(
        profile(&init),
        profile(&ours),
        "init's PROFILE and this workspace's differ"
    );
}
