//! Parser robustness: random mutations of valid services.toml files fed to parsing and
//! validation must never panic, and must give either a config or errors that each
//! carry a location.

use std::path::Path;

use stackherd::config::Config;

/// How many mutated files one run tries.
const CASES: usize = 10_000;

const SEEDS: &[&str] = &[
    include_str!("../../services.toml"),
    r#"
[project]
name = "full"
state_dir = ".state"
stop_timeout = "2s"
env_file = ["a.env"]
orphan_patterns = ["vitest", "esbuild\\d+"]

[services.db]
command = "postgres -D .data -p ${PG_PORT:-5433}"
port = 5433
health = { command = ["pg_isready", "-p", "5433"], interval = "1s", timeout = "2s", retries = 30, start_period = "1s" }
stop_signal = "SIGINT"
stop_command = "pg_ctl stop"

[services.migrate]
command = ["migrate", "up"]
depends_on = { db = "healthy" }

[services.api]
command = ["target/debug/api", "--port", "8080"]
build = { command = "cargo build -p api", cwd = ".", env = { RUSTFLAGS = "-Dwarnings" } }
build_timeout = "5m"
depends_on = { db = "healthy", migrate = "completed" }
env = { DATABASE_URL = "postgres://localhost:5433/app", WORKERS = 4, DEBUG = true }
ports = [8080, 8081]
health = { http = "http://127.0.0.1:8080/health" }
restart = "on-failure"
max_restarts = 3
restart_delay = "500ms"
startup_delay = "100ms"

[services.web]
command = "npm run dev"
cwd = "web"
depends_on = ["api"]
health = { log = "ready in \\d+ ms" }
restart = "always"
"#,
];

/// Pieces that make mutations interesting: TOML syntax, keys, values, variables.
const TOKENS: &[&str] = &[
    "[",
    "]",
    "{",
    "}",
    "=",
    "\"",
    "'",
    "\n",
    "#",
    ",",
    ".",
    "${",
    "}",
    "$${",
    "${X:-",
    "-1",
    "0",
    "70000",
    "\"1s\"",
    "\"x\"",
    "[]",
    "{}",
    "true",
    "1.5",
    "[services.",
    "[project]",
    "depends_on = [\"nope\"]",
    "health = {}",
    "port = 5433",
    "command = \"\"",
    "restart = \"sometimes\"",
    "log = \"(\"",
    "é",
    "\u{0}",
    "\"\"\"",
    "'''",
    "\\",
    "\\u",
    "env_file = \"missing.env\"",
    "cwd = \"${UNSET_VAR_FOR_FUZZ}\"",
    // Values at and past their bounds.
    "\"18446744073709551615s\"",
    "\"25h\"",
    "\"0ms\"",
    "18446744073709551616",
    "-9223372036854775808",
    "4294967295",
    "stop_timeout = \"99999999h\"",
    "retries = 4294967295",
    "max_restarts = \"unlimited\"",
    "max_restarts = \"forever\"",
    "success_exit_codes = [0, 143, 300, -1]",
    "restart_window = \"1ms\"",
    "abort_on_failure = 1",
    "[services.aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa]",
    "[services.\"a.b\"]",
    "[services.\"..\"]",
    "${FUZZ_A}${FUZZ_A}${FUZZ_A}${FUZZ_A}",
    "${FUZZ_A:-${FUZZ_A:-${FUZZ_A:-x}}}",
];

fn mutate(rng: &mut fastrand::Rng, seed: &str) -> String {
    let mut chars: Vec<char> = seed.chars().collect();
    for _ in 0..rng.usize(1..=4) {
        let at = rng.usize(0..=chars.len());
        match rng.u8(0..5) {
            0 if !chars.is_empty() => {
                let end = (at + rng.usize(1..40)).min(chars.len());
                chars.drain(at.min(end)..end);
            }
            1 => chars
                .splice(at..at, TOKENS[rng.usize(0..TOKENS.len())].chars())
                .for_each(drop),
            2 if at < chars.len() => chars[at] = char::from(rng.u8(32..127)),
            3 => {
                let from = rng.usize(0..=chars.len());
                let end = (from + rng.usize(1..60)).min(chars.len());
                let copy: Vec<char> = chars[from.min(end)..end].to_vec();
                chars.splice(at..at, copy).for_each(drop);
            }
            _ => chars
                .splice(
                    at..at,
                    ["\n", "\n[services.x]\ncommand = \"y\"\n"][rng.usize(0..2)].chars(),
                )
                .for_each(drop),
        }
    }
    chars.into_iter().collect()
}

/// Every diagnostic line of the rendered error starts with a location.
fn located(rendered: &str) -> bool {
    let re = regex::Regex::new(r"^services\.toml:\d+:\d+: ").expect("regex");
    let header = regex::Regex::new(r"^services\.toml has \d+ problems:$").expect("regex");
    let mut blocks = rendered.split("\n\n");
    let first = blocks.next().unwrap_or("");
    let mut first_lines = first.lines();
    let head = first_lines.next().unwrap_or("");
    let first_ok = if header.is_match(head) {
        first_lines.next().is_some_and(|l| re.is_match(l))
    } else {
        re.is_match(head)
    };
    first_ok && blocks.all(|b| b.lines().next().is_some_and(|l| re.is_match(l)))
}

#[test]
fn mutated_configs_never_panic_and_every_error_has_a_location() {
    // The seeds name env files; give them ones that exist.
    let dir = tempfile::tempdir().expect("temp dir");
    let root = dir.path().to_path_buf();
    std::fs::write(root.join("demo.env"), "DEMO_STORE_PORT=47401\nDEMO_API_PORT=47402\n").expect("write demo.env");
    std::fs::write(root.join("a.env"), "PG_PORT=5433\n").expect("write a.env");
    let mut rng = fastrand::Rng::with_seed(0x5eed_c0de);
    let (mut valid, mut invalid) = (0, 0);
    for case in 0..CASES {
        let seed = SEEDS[case % SEEDS.len()];
        let text = mutate(&mut rng, seed);
        let parsed = std::panic::catch_unwind(|| Config::parse(Path::new("services.toml"), &root, &text));
        match parsed {
            Err(_) => panic!("parsing panicked on case {case}:\n{text}"),
            Ok(Ok(_)) => valid += 1,
            Ok(Err(err)) => {
                let rendered = err.to_string();
                assert!(
                    located(&rendered),
                    "case {case}: an error without a location:\n{rendered}\n--- input\n{text}"
                );
                invalid += 1;
            }
        }
    }
    assert_eq!(valid + invalid, CASES);
    assert!(
        valid > 100 && invalid > 100,
        "the mutations are too tame or too wild: {valid} valid, {invalid} invalid"
    );
}

/// Command-line arguments: random vectors of subcommands, flags and values (durations
/// past their bound, huge numbers, NUL bytes) parse to a command or a usage error,
/// never a panic.
#[test]
fn random_command_lines_never_panic() {
    use clap::Parser;
    const WORDS: &[&str] = &[
        "start",
        "start-bg",
        "stop",
        "status",
        "logs",
        "cleanup",
        "restart",
        "check",
        "build",
        "run",
        "completions",
        "--",
        "--force",
        "--no-force",
        "--timeout",
        "1s",
        "18446744073709551615s",
        "25h",
        "-1",
        "--volumes",
        "--containers",
        "--json",
        "-n",
        "99999999999999999999",
        "--follow",
        "--dry-run",
        "--no-monitor",
        "--abort-on-failure",
        "--no-abort",
        "--quiet",
        "--config",
        "x.toml",
        "api",
        "\u{0}",
        "é",
        "",
        "bash",
        "zsh",
        "--no-build",
        "--help",
        "--version",
    ];
    let mut rng = fastrand::Rng::with_seed(0xc11_a465);
    for case in 0..2_000 {
        let args: Vec<&str> = std::iter::once("xtask")
            .chain((0..rng.usize(0..6)).map(|_| WORDS[rng.usize(0..WORDS.len())]))
            .collect();
        let parsed = std::panic::catch_unwind(|| stackherd::Cli::try_parse_from(&args).map(|_| ()));
        assert!(parsed.is_ok(), "case {case}: parsing {args:?} panicked");
    }
}
