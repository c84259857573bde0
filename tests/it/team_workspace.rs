//! A team's own workspace adopts the library with `init`: its xtask (a package called
//! `xtask`, with a `codegen` command of its own) gains the dependencies and, by the
//! team's hand as `init` says, stackherd's commands; its Makefile (with its own `help`,
//! `lint` and `test`) includes the fragment; the alias and the profile are added. Built in the suite's target directory with the suite's
//! lock file: only the library and the team's binary are compiled (cargo hashes a
//! package's path relative to its workspace's root, so the library compiled for this
//! workspace is not the team's).

use std::path::{Path, PathBuf};

use crate::harness::{Project, fixture, free_ports, is_alive};

/// The suite's target directory (the fixture's profile directory's parent).
fn target_dir() -> PathBuf {
    Path::new(fixture())
        .parent()
        .and_then(Path::parent)
        .expect("the target directory")
        .to_path_buf()
}

fn repository() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("..")
        .canonicalize()
        .expect("the repository")
}

const TEAM_MAIN_BEFORE: &str = r#"//! The team's xtask.
use clap::Parser;

#[derive(Parser)]
enum Command {
    /// Generate the code
    Codegen,
}

fn main() {
    match Command::parse() {
        Command::Codegen => println!("team codegen: generated 3 files"),
    }
}
"#;

/// The same, with the three lines `init` asks the team to add.
const TEAM_MAIN: &str = r#"//! The team's xtask.
use std::process::ExitCode;

use clap::{Parser, Subcommand};

#[derive(Parser)]
#[command(name = "xtask")]
struct Cli {
    #[command(flatten)]
    stack: stackherd::Options,
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Generate the code
    Codegen,
    #[command(flatten)]
    Stack(stackherd::Command),
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    match cli.command {
        Command::Codegen => {
            println!("team codegen: generated 3 files");
            ExitCode::SUCCESS
        }
        Command::Stack(command) => stackherd::run(cli.stack, command),
    }
}
"#;

const TEAM_MAKEFILE: &str = "\
# The team's binary has a name of its own (see the manifest).
STACKHERD_BIN = team-xtask

.PHONY: help lint test
help:
\t@echo 'team help: make lint, make test'
lint:
\t@echo 'team lint'
test:
\t@echo 'team tests ran'
";

/// The team's workspace before `init`: services.toml with one service on `port`.
fn team_workspace(port: u16) -> Project {
    let services = format!(
        "[project]\nname = \"team\"\n\n[services.web]\ncommand = [\"{}\", \"--port\", \"{port}\"]\nport = {port}\n",
        fixture()
    );
    let p = Project::new(&services)
        .with_env("CARGO_TARGET_DIR", &target_dir().display().to_string())
        .with_env("CARGO_NET_OFFLINE", "true");
    p.write(
        "Cargo.toml",
        "[workspace]\nresolver = \"3\"\nmembers = [\"xtask\"]\n\n[profile.dev]\ndebug = 1\nopt-level = 1\n",
    );
    p.write(
        "xtask/Cargo.toml",
        "[package]\nname = \"xtask\"\nversion = \"0.1.0\"\nedition = \"2024\"\npublish = false\n\n\
         # A name of its own: the suite's target directory holds this repository's `xtask` too.\n\
         [[bin]]\nname = \"team-xtask\"\npath = \"src/main.rs\"\n\n[dependencies]\n",
    );
    p.write("xtask/src/main.rs", TEAM_MAIN_BEFORE);
    p.write("Makefile", TEAM_MAKEFILE);
    p.write(".gitignore", "/target\n");
    std::fs::copy(repository().join("Cargo.lock"), p.path("Cargo.lock")).expect("copy the lock file");
    p.write("app/src/.keep", "");
    p
}

/// Every file of the workspace but the lock file, with its text.
fn files(p: &Project) -> Vec<(String, String)> {
    let mut found: Vec<(String, String)> = [
        "Cargo.toml",
        "xtask/Cargo.toml",
        "xtask/src/main.rs",
        "Makefile",
        ".gitignore",
        ".cargo/config.toml",
        "stackherd.mk",
        "services.toml",
    ]
    .iter()
    .map(|f| (f.to_string(), std::fs::read_to_string(p.path(f)).unwrap_or_default()))
    .collect();
    found.sort();
    found
}

#[test]
fn init_wires_a_team_workspace_once_and_changes_nothing_on_a_dry_run() {
    let [port] = free_ports::<1>();
    let p = team_workspace(port);
    let before = files(&p);
    let dry = p.xtask(&["init", "--dry-run", p.root.to_str().expect("a UTF-8 path")]);
    dry.assert_ok()
        .assert_contains("+[profile.xtask]")
        .assert_contains("+include stackherd.mk")
        .assert_contains("nothing was written");
    assert_eq!(files(&p), before, "a dry run changed files");

    let init = p.xtask(&["init", p.root.to_str().expect("a UTF-8 path")]);
    init.assert_ok()
        .assert_contains("changed Cargo.toml")
        .assert_contains("changed xtask/Cargo.toml: the stackherd and clap dependencies")
        .assert_contains("created .cargo/config.toml")
        .assert_contains("changed Makefile: include stackherd.mk")
        .assert_contains("by hand: xtask/src/main.rs does not hand stackherd its commands");
    let manifest: serde_json::Value =
        serde_json::to_value(std::fs::read_to_string(p.path("Cargo.toml")).expect("the team's Cargo.toml"))
            .expect("text");
    let manifest = manifest.as_str().unwrap_or_default();
    assert!(
        manifest.contains("[profile.dev]\ndebug = 1\nopt-level = 1\n"),
        "the team's dev profile changed:\n{manifest}"
    );
    assert!(manifest.contains("[profile.xtask]"), "{manifest}");
    // The team's own lines are all still there.
    for (file, text) in &before {
        let now = std::fs::read_to_string(p.path(file)).unwrap_or_default();
        for line in text.lines().filter(|l| !l.starts_with("members")) {
            assert!(now.contains(line), "{file} lost {line:?}:\n{now}");
        }
    }
    // The step that is the team's: its main hands stackherd its commands.
    p.write("xtask/src/main.rs", TEAM_MAIN);
    let again = p.xtask(&["init", p.root.to_str().expect("a UTF-8 path")]);
    again.assert_ok().assert_contains("is wired already: nothing to change");
    let wired = files(&p);
    p.xtask(&["init", p.root.to_str().expect("a UTF-8 path")]).assert_ok();
    assert_eq!(files(&p), wired, "a second init changed files");
}

#[test]
fn a_team_workspace_keeps_its_commands_and_drives_its_own_stack() {
    let [port] = free_ports::<1>();
    let p = team_workspace(port);
    p.xtask(&["init", p.root.to_str().expect("a UTF-8 path")]).assert_ok();
    p.write("xtask/src/main.rs", TEAM_MAIN);
    let build = p.program_from(".", "cargo", &["build", "--quiet", "--profile", "xtask", "-p", "xtask"]);
    build.assert_ok();
    assert!(!build.stderr.contains("ambiguous"), "{build}");

    // README's third adoption command.
    p.program_from(".", "cargo", &["xtask", "check"])
        .assert_ok()
        .assert_contains("all checks passed");

    // The team's own command and make targets are still theirs.
    p.program_from(".", "cargo", &["xtask", "codegen"])
        .assert_ok()
        .assert_contains("team codegen: generated 3 files");
    p.program_from(".", "make", &["help"])
        .assert_ok()
        .assert_contains("team help");
    p.program_from(".", "make", &["test"])
        .assert_ok()
        .assert_contains("team tests ran");
    p.program_from(".", "make", &["lint"])
        .assert_ok()
        .assert_contains("team lint");

    // stackherd's commands drive the team's services.toml, from the root and from a
    // subdirectory, through cargo and through make.
    for (dir, program, start, status, logs, stop) in [
        (
            ".",
            "cargo",
            &["xtask", "start-bg"][..],
            &["xtask", "status"][..],
            &["xtask", "logs", "web"][..],
            &["xtask", "stop"][..],
        ),
        (
            "app/src",
            "cargo",
            &["xtask", "start-bg"],
            &["xtask", "status"],
            &["xtask", "logs", "web"],
            &["xtask", "stop"],
        ),
        (
            ".",
            "make",
            &["start-bg"],
            &["status"],
            &["logs", "SERVICE=web"],
            &["stop"],
        ),
    ] {
        p.program_from(dir, program, start).assert_ok().assert_contains("web");
        let web = p.pid_of("web");
        assert!(
            web > 0 && is_alive(web),
            "{program} {start:?} in {dir}: web does not run"
        );
        p.program_from(dir, program, status)
            .assert_ok()
            .assert_contains(&format!("project team at {}", p.root.display()))
            .assert_contains("running");
        p.program_from(dir, program, logs)
            .assert_ok()
            .assert_contains(&format!("listening on port {port}"));
        p.program_from(dir, program, stop)
            .assert_ok()
            .assert_contains("no process of this project is left");
        assert!(!is_alive(web), "{program} {stop:?} in {dir} left web running");
        p.assert_nothing_running();
    }
    // The hints name what the user ran.
    let status = p.program_from(".", "make", &["status"]);
    assert!(status.stdout.contains("`make start-bg`"), "{status}");
}

/// A repository with a Procfile and no services.toml: `init` imports it.
#[test]
fn init_imports_a_procfile_it_finds() {
    let p = Project::new("");
    std::fs::remove_file(p.path("services.toml")).expect("no services.toml yet");
    p.write("Cargo.toml", "[workspace]\nmembers = []\n");
    p.write(
        "Procfile",
        "web: python3 -m http.server $PORT\nworker: python3 worker.py\n",
    );
    p.xtask(&["init", p.root.to_str().expect("a UTF-8 path")])
        .assert_ok()
        .assert_contains("created services.toml: imported from Procfile");
    let services = std::fs::read_to_string(p.path("services.toml")).expect("services.toml");
    assert!(
        services.contains("[services.web]\ncommand = \"python3 -m http.server $PORT\"\nport = \"auto\"\n")
            && services.contains("[services.worker]"),
        "{services}"
    );
}
