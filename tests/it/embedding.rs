//! A team's xtask embeds the library: its `main` must pass the hidden commands (the
//! monitor, the log relays) on. One that nests them where they cannot be reached is
//! refused at its first start, with the fix named and nothing started, instead of
//! services that die with their relays.

use std::process::{Command, Stdio};

use crate::harness::{Project, fixture};

/// The `unwired` test binary (stackherd's commands under `stack`), run in `p`.
fn unwired(p: &Project, args: &[&str]) -> (i32, String, String) {
    unwired_as(p, "nested", args)
}

/// The same, wired wrongly as `how` says (`nested` or `options`).
fn unwired_as(p: &Project, how: &str, args: &[&str]) -> (i32, String, String) {
    let out = Command::new(env!("CARGO_BIN_EXE_unwired"))
        .env("UNWIRED", how)
        .args(args)
        .current_dir(&p.root)
        .env("NO_COLOR", "1")
        .env_remove("XTASK_CONFIG")
        .env_remove("XTASK_PROJECT")
        .stdin(Stdio::null())
        .output()
        .expect("run the unwired xtask");
    (
        out.status.code().unwrap_or(-1),
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

#[test]
fn a_main_that_hides_the_hidden_commands_is_refused_before_anything_starts() {
    let p = Project::new(&format!("[services.web]\ncommand = [\"{}\"]\n", fixture()));
    for args in [
        &["stack", "start-bg"][..],
        &["stack", "start-bg", "--no-monitor"],
        &["stack", "run", "--", "true"],
    ] {
        let (code, stdout, stderr) = unwired(&p, args);
        assert_eq!(code, 78, "{args:?}:\n{stdout}{stderr}");
        assert!(
            stderr.contains("does not pass stackherd's hidden commands on")
                && stderr.contains("`stackherd::Command` into your subcommands"),
            "{args:?}: the error does not name the fix:\n{stderr}"
        );
        assert!(stderr.contains("nothing was started"), "{stderr}");
        p.assert_nothing_running();
        assert!(p.pid_of("web") == 0, "{args:?} left a record of web");
    }
    // What does not run the binary again works as it is wired.
    let (code, stdout, stderr) = unwired(&p, &["stack", "status"]);
    assert_eq!(code, 3, "{stdout}{stderr}");
    assert!(stdout.contains("web"), "{stdout}");
    assert_eq!(unwired(&p, &["codegen"]).0, 0);
}

#[test]
fn this_repository_xtask_answers_the_check() {
    let p = Project::new("[services.web]\ncommand = \"sleep 100\"\n");
    p.xtask(&["__reexec-check"])
        .assert_ok()
        .assert_contains("stackherd: the hidden commands reach the library");
}

/// Commands flattened, options not: the monitor, run with `--config` before its
/// command, would die at once; the start says so first.
#[test]
fn a_main_that_leaves_out_the_options_is_refused_before_anything_starts() {
    let p = Project::new(&format!("[services.web]\ncommand = [\"{}\"]\n", fixture()));
    let (code, stdout, stderr) = unwired_as(&p, "options", &["start-bg"]);
    assert_eq!(code, 78, "{stdout}{stderr}");
    assert!(
        stderr.contains("`stackherd::Options` into your parser's top level"),
        "{stderr}"
    );
    p.assert_nothing_running();
    assert_eq!(p.pid_of("web"), 0);
}
