//! `completions SHELL`: a completion script for bash, zsh, fish, elvish or PowerShell.
//! For bash and fish it also completes `cargo xtask …` as people type it, with the
//! service names of the project's services.toml (from the hidden `__complete services`).

use std::path::Path;

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

pub fn run(shell: clap_complete::Shell) {
    let mut command = <Cli as clap::CommandFactory>::command();
    ui::raw(|out| {
        clap_complete::generate(shell, &mut command, "xtask", out);
        let extra = match shell {
            clap_complete::Shell::Bash => BASH_CARGO,
            clap_complete::Shell::Fish => FISH_CARGO,
            _ => "",
        };
        let _ = out.write_all(extra.as_bytes());
    });
}

/// The words `__complete WHAT` offers, one per line: `services`, the declared service
/// names (and the compose file's). Silent when services.toml cannot be read: a TAB
/// press must not print errors into the command line.
pub fn words(config: &Path, what: &str) {
    if what != "services" {
        return;
    }
    let Ok(config) = Config::load(config) else {
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
