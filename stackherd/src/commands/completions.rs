//! `completions SHELL`: a completion script for bash, zsh, fish, elvish or PowerShell.
//! For bash, zsh and fish it also completes `cargo xtask …` as people type it, with the
//! service names of the project's services.toml (from the hidden `__complete services`).

use std::path::PathBuf;

use crate::cli::Cli;
use crate::config::Config;
use crate::ui;

/// For bash: `cargo xtask …` completes as `xtask …` (clap's `_xtask`), plus service
/// names; any other `cargo` command goes to the completion cargo had before.
const BASH_CARGO: &str = r#"
# `cargo xtask …`: complete as xtask, with the project's service names; other cargo
# commands keep cargo's own completion.
__xtask_cargo_previous=$(complete -p cargo 2>/dev/null | sed -n 's/.*-F \([^ ]*\) .*/\1/p')
_xtask_cargo() {
    if [[ ${COMP_WORDS[1]} == xtask ]]; then
        COMP_WORDS=(xtask "${COMP_WORDS[@]:2}")
        COMP_CWORD=$((COMP_CWORD - 1))
        local cur=${COMP_WORDS[COMP_CWORD]}
        _xtask xtask "$cur" "${COMP_WORDS[COMP_CWORD - 1]}"
        if [[ $cur != -* && $COMP_CWORD -ge 2 ]]; then
            COMPREPLY+=($(compgen -W "$(cargo xtask __complete services 2>/dev/null)" -- "$cur"))
        fi
        return 0
    fi
    if [[ -n $__xtask_cargo_previous ]]; then
        "$__xtask_cargo_previous" "$@"
    fi
}
complete -F _xtask_cargo -o bashdefault -o default cargo
"#;

/// For fish: `cargo xtask …` completes what `xtask …` would, plus service names.
const FISH_CARGO: &str = r#"
# `cargo xtask …`: complete as xtask, with the project's service names.
complete -c cargo -n '__fish_seen_subcommand_from xtask' -f -a '(complete -C"xtask "(commandline -cp | string replace -r "^\s*cargo\s+xtask\s*" ""))'
complete -c cargo -n '__fish_seen_subcommand_from xtask' -f -a '(cargo xtask __complete services 2>/dev/null)'
"#;

/// For zsh: the service arguments complete the project's service names rather than
/// files. Defined before clap's closing block, which calls `_xtask` at once when the
/// file is autoloaded from `fpath`.
const ZSH_SERVICES: &str = r#"
(( $+functions[_xtask_services] )) ||
_xtask_services() {
    local -a names
    names=(${(f)"$(cargo xtask __complete services 2>/dev/null)"})
    compadd -a names
}

"#;

/// For zsh: `cargo xtask …` completes as `xtask …`; any other `cargo` command goes to
/// the completion cargo had when this was sourced.
const ZSH_CARGO: &str = r#"
# `cargo xtask …`: complete as xtask, with the project's service names; other cargo
# commands keep cargo's own completion.
__xtask_cargo_previous=${_comps[cargo]-}
[[ $__xtask_cargo_previous == _xtask_cargo ]] && __xtask_cargo_previous=
_xtask_cargo() {
    if (( CURRENT > 2 )) && [[ ${words[2]} == xtask ]]; then
        words=(xtask "${(@)words[3,-1]}")
        (( CURRENT-- ))
        _xtask "$@"
        return
    fi
    [[ -n $__xtask_cargo_previous ]] && "$__xtask_cargo_previous" "$@"
    (( CURRENT == 2 )) && compadd xtask
}
compdef _xtask_cargo cargo
"#;

/// Where clap's zsh script ends with the block that runs or registers `_xtask`.
const ZSH_CLOSING: &str = "\nif [ \"$funcstack[1]\" = \"_xtask\" ]; then";

pub fn run(shell: clap_complete::Shell) {
    let mut command = <Cli as clap::CommandFactory>::command();
    let mut script = Vec::new();
    clap_complete::generate(shell, &mut command, "xtask", &mut script);
    let script = String::from_utf8_lossy(&script);
    let script = match shell {
        clap_complete::Shell::Bash => format!("{script}{BASH_CARGO}"),
        clap_complete::Shell::Fish => format!("{script}{FISH_CARGO}"),
        clap_complete::Shell::Zsh => zsh(&script),
        _ => script.into_owned(),
    };
    ui::raw(|out| {
        let _ = out.write_all(script.as_bytes());
    });
}

/// clap's zsh script with service names for the service arguments and the `cargo
/// xtask` wrapper.
fn zsh(script: &str) -> String {
    let script = script
        .lines()
        .map(|line| {
            if line.starts_with("'*::services") {
                line.replace(":_default'", ":_xtask_services'")
            } else {
                line.to_string()
            }
        })
        .collect::<Vec<_>>()
        .join("\n");
    let (body, closing) = script.split_at(script.find(ZSH_CLOSING).unwrap_or(script.len()));
    format!("{body}{ZSH_SERVICES}{closing}\n{ZSH_CARGO}")
}

/// The words `__complete WHAT` offers, one per line: `services`, the declared service
/// names (and the compose file's). Silent when services.toml cannot be read: a TAB
/// press must not print errors into the command line.
pub fn words(paths: &[PathBuf], what: &str) {
    if what != "services" {
        return;
    }
    let Ok(config) = Config::load_with(paths, crate::config::Hooks::default()) else {
        return;
    };
    let names = config
        .services
        .iter()
        .map(|s| s.name.clone())
        .chain(config.project.compose_services.iter().cloned());
    for name in names {
        ui::raw(|out| {
            let _ = writeln!(out, "{name}");
        });
    }
}
