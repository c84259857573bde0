//! Bad services.toml: every problem at once, each with file:line:column, what and what
//! to do; and nothing already running is disturbed.

use crate::harness::{Project, fixture};

/// Runs `check` on `input` and compares the whole error output with `expected`.
#[track_caller]
fn check(input: &str, expected: &str) {
    let p = Project::new(input);
    let run = p.xtask(&["--config", "services.toml", "check"]);
    run.assert_code(78);
    assert_eq!(run.stderr.trim_end(), format!("error: {}", expected.trim()), "\n{run}");
}

#[test]
fn malformed_toml_points_at_the_syntax_error() {
    check(
        "[services.api\ncommand = \"x\"\n",
        r#"
services.toml:1:14: invalid TOML: unclosed table, expected `]`
  |
1 | [services.api
  |              ^ fix the syntax; see https://toml.io for the format"#,
    );
}

#[test]
fn an_unknown_key_is_named_with_a_suggestion() {
    check(
        "[services.api]\ncommand = \"x\"\nhelth = { port = 80 }\n",
        r#"
services.toml:3:1: unknown key `helth` in [services.api]
  |
3 | helth = { port = 80 }
  | ^^^^^ did you mean `health`?"#,
    );
}

#[test]
fn a_wrong_type_says_what_was_expected() {
    check(
        "[services.api]\ncommand = \"x\"\nport = true\n",
        r#"
services.toml:3:8: `port` in [services.api] must be an integer, found a boolean
  |
3 | port = true
  |        ^^^^"#,
    );
}

#[test]
fn two_services_declaring_one_port_are_rejected() {
    check(
        "[services.a]\ncommand = \"x\"\nport = 5432\n\n[services.b]\ncommand = \"y\"\nports = [80, 5432]\n",
        r#"
services.toml:7:14: port 5432 of service `b` is already declared by service `a`
  |
7 | ports = [80, 5432]
  |              ^^^^ give each service its own port"#,
    );
}

#[test]
fn a_dependency_on_an_unknown_service_is_rejected() {
    check(
        "[services.db]\ncommand = \"x\"\n\n[services.api]\ncommand = \"y\"\ndepends_on = [\"dbb\"]\n",
        r#"
services.toml:6:15: service `api` depends on unknown service `dbb`
  |
6 | depends_on = ["dbb"]
  |               ^^^^^ did you mean `db`?"#,
    );
}

#[test]
fn a_cycle_is_printed() {
    check(
        "[services.a]\ncommand = \"x\"\ndepends_on = [\"b\"]\n\n[services.b]\ncommand = \"y\"\ndepends_on = [\"a\"]\n",
        r#"
services.toml:1:11: dependency cycle: a -> b -> a
  |
1 | [services.a]
  |           ^ remove one of these `depends_on` entries"#,
    );
}

#[test]
fn an_empty_command_is_rejected() {
    check(
        "[services.api]\ncommand = []\n",
        r#"
services.toml:2:11: `command` in [services.api] is empty
  |
2 | command = []
  |           ^^ name the program first, then its arguments"#,
    );
}

#[test]
fn a_log_regex_that_does_not_compile_is_a_config_error() {
    check(
        "[services.api]\ncommand = \"x\"\nhealth = { log = \"ready (\" }\n",
        r#"
services.toml:3:18: `log` in the health of [services.api] is not a valid regular expression
  |
3 | health = { log = "ready (" }
  |                  ^^^^^^^^^ error: unclosed group"#,
    );
}

#[test]
fn a_bad_dependency_condition_or_restart_policy_is_named() {
    check(
        "[services.db]\ncommand = \"x\"\n\n[services.api]\ncommand = \"y\"\ndepends_on = { db = \"ready\" }\nrestart = \"sometimes\"\n",
        r#"
services.toml has 2 problems:
services.toml:6:21: `ready` is not a dependency condition
  |
6 | depends_on = { db = "ready" }
  |                     ^^^^^^^ use "started", "healthy" or "completed"

services.toml:7:11: `restart` in [services.api]: `sometimes` is not a restart policy
  |
7 | restart = "sometimes"
  |           ^^^^^^^^^^^ use "no", "on-failure" or "always""#,
    );
}

#[test]
fn all_problems_are_reported_in_one_run() {
    check(
        "[project]\nnme = \"x\"\n\n[services.api]\ncommand = \"x\"\nstop_signal = \"SIGFOO\"\nstop_timeout = 3\n",
        r#"
services.toml has 3 problems:
services.toml:2:1: unknown key `nme` in [project]
  |
2 | nme = "x"
  | ^^^ did you mean `name`?

services.toml:6:15: `stop_signal` in [services.api]: `SIGFOO` is not a signal
  |
6 | stop_signal = "SIGFOO"
  |               ^^^^^^^^ use a name such as "SIGTERM", "SIGINT" or "SIGQUIT"

services.toml:7:16: `stop_timeout` in [services.api] must be a duration string such as "500ms" or "3s", found an integer
  |
7 | stop_timeout = 3
  |                ^"#,
    );
}

#[test]
fn a_missing_config_file_says_where_it_looked() {
    let p = Project::new("");
    let run = p.xtask(&["--config", "nope.toml", "check"]);
    run.assert_code(78)
        .assert_contains("nope.toml: cannot read the config file")
        .assert_contains("create it, or point --config or XTASK_CONFIG at one");
    // `status` needs no config: it says what is missing and that nothing runs.
    p.xtask(&["--config", "nope.toml", "status"])
        .assert_code(3)
        .assert_contains("nope.toml: cannot read the config file");
}

#[test]
fn a_broken_config_disturbs_nothing_already_running() {
    let fx = fixture();
    let p = Project::new(&format!("[services.api]\ncommand = [\"{fx}\"]\n"));
    p.xtask(&["start-bg"]).assert_ok();
    let good = std::fs::read_to_string(p.path("services.toml")).expect("read config");
    p.write("services.toml", &format!("{good}\n[services.broken\n"));
    p.xtask(&["start-bg"]).assert_code(78);
    p.xtask(&["check"]).assert_code(78);
    assert_eq!(
        p.service_processes().len(),
        1,
        "a command with a broken config disturbed a running service"
    );
    p.write("services.toml", &good);
    p.xtask(&["status"]).assert_ok();
}

#[test]
fn stop_cleanup_and_status_need_no_valid_config() {
    let fx = fixture();
    let p = Project::new(&format!(
        "[project]\nstate_dir = \"state\"\n\n[services.api]\ncommand = [\"{fx}\"]\n\n[services.web]\ncommand = [\"{fx}\"]\ndepends_on = [\"api\"]\n"
    ));
    p.xtask(&["start-bg"]).assert_ok();
    let good = std::fs::read_to_string(p.path("services.toml")).expect("read config");
    p.write("services.toml", &format!("{good}\n[services.broken]\ncommand = 3\n"));
    let warning = "services.toml:12:11: `command` in [services.broken] must be a string or an array of strings, found an integer; going on from the records and the process scan";
    p.xtask(&["status"]).assert_ok().assert_contains(warning);
    p.xtask(&["stop", "web"]).assert_ok().assert_contains(warning);
    assert_eq!(p.service_processes().len(), 1, "stop web stopped more or less than web");
    std::fs::remove_file(p.path("services.toml")).expect("delete the config");
    p.xtask(&["cleanup", "--dry-run"])
        .assert_ok()
        .assert_contains("cannot read the config file");
    p.xtask(&["stop", "--force"])
        .assert_ok()
        .assert_contains("no process of this project is left");
    p.assert_nothing_running();
}

/// Durations past a day are typos, and far longer ones overflowed the clock arithmetic
/// (a panic in `stop_timeout`, a hang with the lock held in `start_period`).
#[test]
fn durations_longer_than_a_day_are_located_errors_not_panics() {
    check(
        "[services.api]\ncommand = \"x\"\nstop_timeout = \"18446744073709551615s\"\n",
        r#"
services.toml:3:16: `stop_timeout` in [services.api] is longer than 24h, the longest duration xtask accepts
  |
3 | stop_timeout = "18446744073709551615s"
  |                ^^^^^^^^^^^^^^^^^^^^^^^ write a duration of at most "24h""#,
    );
    check(
        "[services.api]\ncommand = \"x\"\nhealth = { port = 8080, interval = \"1h\", retries = 4294967295 }\n",
        r#"
services.toml:3:52: `retries` in the health of [services.api] makes the start-up budget (`start_period + retries × interval`) longer than 24h
  |
3 | health = { port = 8080, interval = "1h", retries = 4294967295 }
  |                                                    ^^^^^^^^^^ lower `retries` or `interval`"#,
    );
    let p = Project::new(&format!("[services.api]\ncommand = [\"{}\"]\n", fixture()));
    p.xtask(&["stop", "--timeout", "999999999999h"])
        .assert_code(2)
        .assert_contains("longer than 24h, the longest duration xtask accepts");
}

/// What the config cannot run is refused up front, every problem in one run: a
/// self-dependency next to an unknown one, a NUL byte (it passed `check`, then the
/// spawn failed), a name too long for a record file (the rollback could then miss the
/// process), a name with a character outside `[A-Za-z0-9_.-]`.
#[test]
fn what_cannot_run_is_refused_up_front_all_at_once() {
    let long = "a".repeat(245);
    let p = Project::new(&format!(
        "[services.api]\ncommand = \"x\"\ndepends_on = [\"api\", \"dbb\"]\nenv = {{ MODE = \"a\\u0000b\" }}\n\n[services.db]\ncommand = \"x\"\n\n[services.{long}]\ncommand = \"x\"\n\n[services.\"we b\"]\ncommand = \"x\"\n"
    ));
    let run = p.xtask(&["check"]);
    run.assert_code(78)
        .assert_contains("services.toml:3:15: service `api` depends on itself")
        .assert_contains("services.toml:3:22: service `api` depends on unknown service `dbb`")
        .assert_contains("services.toml:4:16: `MODE` of `env` in [services.api] contains a NUL byte")
        .assert_contains(&format!("invalid service name `{long}`"))
        .assert_contains("invalid service name `we b`")
        .assert_contains("use at most 64 letters, digits, `-`, `_` and `.`");
    // A dot is fine inside a name.
    let p = Project::new(&format!("[services.\"api.v2\"]\ncommand = [\"{}\"]\n", fixture()));
    p.xtask(&["check"]).assert_ok();
}

#[test]
fn an_empty_services_table_is_an_error() {
    let p = Project::new("[services]\n");
    p.xtask(&["check"])
        .assert_code(78)
        .assert_contains("no services are declared: `[services]` is empty");
}

/// Variables that each name the next twice grow exponentially: a 493-byte `.env` took
/// 15 s, then 4.8 GB and SIGABRT. Both expansions are bounded: dotenvy's within an
/// env_file, and xtask's own of `${...}` in services.toml (from the environment here).
#[test]
fn variables_that_expand_exponentially_are_an_error_not_an_abort() {
    let mut env = String::from("V0=xxxxxxxxxxxxxxxx\n");
    for i in 1..40 {
        env.push_str(&format!("V{i}=${{V{}}}${{V{}}}\n", i - 1, i - 1));
    }
    let p = Project::new("[project]\nenv_file = \".env\"\n\n[services.api]\ncommand = \"echo ${V39}\"\n");
    p.write(".env", &env);
    p.xtask_within(&["check"], std::time::Duration::from_secs(20))
        .assert_code(78)
        .assert_contains(".env:13: `V12` expands to more than 64 KiB");

    let mut p = Project::new("[services.api]\ncommand = \"echo ${W39}\"\n").with_env("W0", "xxxxxxxxxxxxxxxx");
    for i in 1..40 {
        p = p.with_env(&format!("W{i}"), &format!("${{W{}}}${{W{}}}", i - 1, i - 1));
    }
    p.xtask_within(&["check"], std::time::Duration::from_secs(20))
        .assert_code(78)
        .assert_contains("services.toml:2:11: `command` in [services.api]: the variables expand to more than 64 KiB or 10000 substitutions");
}

#[test]
fn watch_entries_are_checked_where_they_stand() {
    check(
        "[services.web]\ncommand = \"x\"\nwatch = [\"src/[a\", \"/etc\"]\n\n[services.b]\ncommand = \"y\"\nwatch = []\n\n[services.c]\ncommand = \"y\"\nwatch_ignore = [\"x\"]\nrestart_with = 1\n",
        r#"
services.toml has 5 problems:
services.toml:3:10: `watch` in [services.web]: `src/[a` is not a valid glob: unclosed character class; missing ']'
  |
3 | watch = ["src/[a", "/etc"]
  |          ^^^^^^^^ write a path ("src") or a glob ("src/**/*.rs")

services.toml:3:20: `watch` in [services.web]: `/etc` is an absolute path
  |
3 | watch = ["src/[a", "/etc"]
  |                    ^^^^^^ watch paths are relative to the service's `cwd`, so that the project works in any checkout

services.toml:7:9: `watch` in [services.b] names nothing to watch
  |
7 | watch = []
  |         ^^ list paths or globs, relative to the service's `cwd`: watch = ["src"]

services.toml:11:16: `watch_ignore` in [services.c] needs `watch`
   |
11 | watch_ignore = ["x"]
   |                ^^^^^ add the paths to watch: watch = ["src"]

services.toml:12:16: `restart_with` in [services.c] must be true or false, found an integer
   |
12 | restart_with = 1
   |                ^"#,
    );
}
