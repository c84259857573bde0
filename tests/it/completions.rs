//! Shell completions: a script for each shell, and `cargo xtask …` completed as typed,
//! with the project's service names, checked in bash, zsh and fish themselves.

use std::time::Duration;

use crate::harness::{Project, fixture, xtask_bin};
use crate::tmux::Tmux;

/// Three services, two of which share the prefix `ap`.
fn project() -> Project {
    let fx = fixture();
    Project::new(&format!(
        "[services.api]\ncommand = [\"{fx}\"]\n\n[services.apex]\ncommand = [\"{fx}\"]\n\n[services.db]\ncommand = [\"{fx}\"]\n"
    ))
}

#[test]
fn completions_generate_for_each_shell() {
    let p = Project::new("");
    for shell in ["bash", "zsh", "fish"] {
        let run = p.xtask(&["completions", shell]);
        run.assert_ok();
        for command in ["start-bg", "stop", "run"] {
            assert!(run.stdout.contains(command), "{shell} completions lack `{command}`");
        }
    }
}

/// `completions bash` completes `cargo xtask …` as people type it, with the service
/// names of the project's services.toml; checked in bash with `complete -p` and the
/// completion function itself (which uses `compgen`). `cargo` is a shell function here
/// that runs the xtask binary, as cargo's alias does.
#[test]
fn bash_completes_cargo_xtask_with_commands_and_service_names() {
    let p = project();
    let script = p.xtask(&["completions", "bash"]);
    script.assert_ok();
    p.write("completion.bash", &script.stdout);
    let probe = format!(
        r#"
cargo() {{ if [[ $1 == xtask ]]; then shift; "{bin}" "$@"; fi; }}
source ./completion.bash
complete -p cargo
complete -p xtask
COMP_WORDS=(cargo xtask sta); COMP_CWORD=2; _xtask_cargo cargo sta xtask
echo "commands: ${{COMPREPLY[*]}}"
COMP_WORDS=(cargo xtask stop ap); COMP_CWORD=3; _xtask_cargo cargo ap stop
echo "services: ${{COMPREPLY[*]}}"
"#,
        bin = xtask_bin().display()
    );
    let out = std::process::Command::new("bash")
        .args(["-c", &probe])
        .current_dir(&p.root)
        .env("XTASK_CONFIG", p.path("services.toml"))
        .output()
        .expect("run bash");
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(text.contains("-F _xtask_cargo cargo"), "{text}");
    assert!(text.contains("-F _xtask xtask"), "{text}");
    let commands = text.lines().find_map(|l| l.strip_prefix("commands: ")).unwrap_or("");
    for command in ["start", "start-bg", "status"] {
        assert!(commands.split(' ').any(|c| c == command), "no `{command}` in: {text}");
    }
    let services = text.lines().find_map(|l| l.strip_prefix("services: ")).unwrap_or("");
    let mut services: Vec<&str> = services.split(' ').filter(|s| !s.is_empty()).collect();
    services.sort_unstable();
    assert_eq!(services, ["apex", "api"], "{text}");
}

/// `completions zsh`, sourced after compinit as README says, completes `cargo xtask …`
/// in a real interactive zsh: commands, then service names (not files) for `stop`.
#[test]
fn zsh_completes_cargo_xtask_with_commands_and_service_names() {
    let p = project();
    let script = p.xtask(&["completions", "zsh"]);
    script.assert_ok();
    p.write("completion.zsh", &script.stdout);
    p.write(
        "setup.zsh",
        &format!(
            "autoload -Uz compinit && compinit -u\ncargo() {{ if [[ $1 == xtask ]]; then shift; \"{bin}\" \"$@\"; fi }}\nsource ./completion.zsh\nPS1='ready> '\n",
            bin = xtask_bin().display()
        ),
    );
    let config = p.path("services.toml");
    let config = config.to_string_lossy();
    let zsh = Tmux::start(&p.root, 120, 30, &[("XTASK_CONFIG", &config)], &["zsh", "-f"]);
    zsh.send(&["source ./setup.zsh; clear", "Enter"]);
    zsh.wait_for_screen("the prompt", Duration::from_secs(10), |s| s.contains("ready>"));

    zsh.send(&["cargo xtask sta", "Tab"]);
    let screen = zsh.wait_for_screen("the commands", Duration::from_secs(10), |s| s.contains("status"));
    for command in ["start", "start-bg", "status"] {
        assert!(
            screen.lines().any(|l| l.starts_with(command)),
            "no `{command}` in:\n{screen}"
        );
    }
    assert!(!screen.contains("stop "), "`stop` offered for `sta`:\n{screen}");

    zsh.send(&["C-u", "clear", "Enter"]);
    // Typed only once the screen is clear, or zsh echoes the line typed ahead too.
    zsh.wait_for_screen("a clear screen", Duration::from_secs(10), |s| s.trim() == "ready>");
    zsh.send(&["cargo xtask stop ap", "Tab"]);
    let screen = zsh.wait_for_screen("the service names", Duration::from_secs(10), |s| s.contains("apex"));
    // What zsh lists under the line being completed.
    let offered: Vec<&str> = screen
        .lines()
        .skip_while(|l| !l.contains("ready> cargo xtask stop"))
        .skip(1)
        .flat_map(str::split_whitespace)
        .collect();
    assert_eq!(offered, ["apex", "api"], "\n{screen}");
}

/// `completions fish` completes `cargo xtask …` in fish (`complete -C` asks fish for
/// what a TAB would offer).
#[test]
fn fish_completes_cargo_xtask_with_commands_and_service_names() {
    let p = project();
    let script = p.xtask(&["completions", "fish"]);
    script.assert_ok();
    p.write("completion.fish", &script.stdout);
    let probe = format!(
        "function cargo; if test \"$argv[1]\" = xtask; \"{bin}\" $argv[2..]; end; end\n\
         source ./completion.fish\n\
         echo '== commands'; complete -C 'cargo xtask sta'\n\
         echo '== services'; complete -C 'cargo xtask stop ap'\n",
        bin = xtask_bin().display()
    );
    let out = std::process::Command::new("fish")
        .args(["--no-config", "-c", &probe])
        .current_dir(&p.root)
        .env("XTASK_CONFIG", p.path("services.toml"))
        .output()
        .expect("fish is installed (.ci/run installs it)");
    let text = String::from_utf8_lossy(&out.stdout);
    let (commands, services) = text.split_once("== services").expect("both sections printed");
    let words = |section: &str| -> Vec<String> {
        section
            .lines()
            .filter(|l| !l.is_empty() && !l.starts_with("=="))
            .filter_map(|l| l.split('\t').next())
            .map(str::to_string)
            .collect()
    };
    assert_eq!(words(commands), ["start", "start-bg", "status"], "{text}");
    assert_eq!(words(services), ["apex", "api"], "{text}");
}
