//! A team's own workspace adopts the library as its README says: its xtask (a package
//! called `xtask`, with a `codegen` command of its own) flattens stackherd's commands,
//! its Makefile (with its own `help`, `lint` and `test`) includes the fragment, and its
//! alias and profile are added. Built in the suite's target directory with the suite's
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
.PHONY: help lint test
help:
\t@echo 'team help: make lint, make test'
lint:
\t@echo 'team lint'
test:
\t@echo 'team tests ran'

include stackherd.mk
";

/// The team's workspace, adopted: services.toml with one service on `port`.
fn team_workspace(port: u16) -> Project {
    let repo = repository();
    let services = format!(
        "[project]\nname = \"team\"\n\n[services.web]\ncommand = [\"{}\", \"--port\", \"{port}\"]\nport = {port}\n",
        fixture()
    );
    let p = Project::new(&services)
        .with_env("CARGO_TARGET_DIR", &target_dir().display().to_string())
        .with_env("CARGO_NET_OFFLINE", "true");
    // The adopted profile is the library's own, word for word: the suite's build of it
    // is then the team's too.
    let ours = std::fs::read_to_string(repo.join("Cargo.toml")).expect("our Cargo.toml");
    let profile = &ours[ours.find("[profile.xtask]").expect("our [profile.xtask]")..];
    p.write(
        "Cargo.toml",
        &format!(
            "[workspace]\nresolver = \"3\"\nmembers = [\"xtask\"]\n\n[profile.dev]\ndebug = 1\nopt-level = 1\n\n{profile}"
        ),
    );
    p.write(
        "xtask/Cargo.toml",
        &format!(
            "[package]\nname = \"xtask\"\nversion = \"0.1.0\"\nedition = \"2024\"\npublish = false\n\n\
             # A name of its own: the suite's target directory holds this repository's `xtask` too.\n\
             [[bin]]\nname = \"team-xtask\"\npath = \"src/main.rs\"\n\n\
             [dependencies]\nclap = {{ version = \"4.6\", features = [\"derive\"] }}\n\
             stackherd = {{ path = \"{}\" }}\n",
            repo.join("stackherd").display()
        ),
    );
    p.write("xtask/src/main.rs", TEAM_MAIN);
    p.write(
        ".cargo/config.toml",
        "[alias]\nxtask = \"run --quiet --profile xtask --package xtask --bin team-xtask --\"\n",
    );
    p.write("Makefile", TEAM_MAKEFILE);
    let fragment = std::fs::read_to_string(repo.join("stackherd/make/stackherd.mk")).expect("the fragment");
    p.write(
        "stackherd.mk",
        &fragment.replacen(
            "STACKHERD_BIN ?= $(STACKHERD_PACKAGE)",
            "STACKHERD_BIN ?= team-xtask",
            1,
        ),
    );
    std::fs::copy(repo.join("Cargo.lock"), p.path("Cargo.lock")).expect("copy the lock file");
    p.write("app/src/.keep", "");
    p
}

#[test]
fn a_team_workspace_keeps_its_commands_and_drives_its_own_stack() {
    let [port] = free_ports::<1>();
    let p = team_workspace(port);
    let build = p.program_from(".", "cargo", &["build", "--quiet", "--profile", "xtask", "-p", "xtask"]);
    build.assert_ok();
    assert!(!build.stderr.contains("ambiguous"), "{build}");

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
