//! Hints name the command as the user runs it: `make logs SERVICE=redis` under the
//! Makefile, `cargo xtask logs redis` through cargo, `./target/xtask/xtask logs redis`
//! when the binary was run by its path, or the team's own prefix.

use std::sync::OnceLock;

/// How xtask was run, told once per process.
enum Via {
    /// The Makefile's targets (`XTASK_VIA=make`, or `make:PREFIX` for targets named
    /// with a prefix such as `stack-`): arguments become make variables.
    Make(String),
    /// A prefix written before the command's words (`cargo xtask`, `cargo dev`).
    Prefix(String),
}

fn via() -> &'static Via {
    static VIA: OnceLock<Via> = OnceLock::new();
    VIA.get_or_init(|| match std::env::var("XTASK_VIA") {
        Ok(v) if v == "make" => Via::Make(String::new()),
        Ok(v) if v.starts_with("make:") => Via::Make(v.trim_start_matches("make:").trim().to_string()),
        // A team whose alias has another name says so: `XTASK_VIA="cargo dev"`.
        Ok(v) if !v.trim().is_empty() => Via::Prefix(v.trim().to_string()),
        // `cargo run`, which the `cargo xtask` alias is, tells the program it runs.
        _ if std::env::var_os("CARGO").is_some() => Via::Prefix("cargo xtask".to_string()),
        _ => Via::Prefix(std::env::args().next().unwrap_or_else(|| "xtask".to_string())),
    })
}

/// `words` (a subcommand, then its arguments: `logs redis`, `cleanup`, `stop --force`)
/// as the user would type them.
pub fn command(words: &str) -> String {
    match via() {
        Via::Prefix(prefix) => format!("{prefix} {words}"),
        Via::Make(prefix) => make_form(prefix, words),
    }
}

/// `logs redis -f` → `make logs SERVICE=redis ARGS="-f"`; `stop --force` → `make
/// stop-force`.
fn make_form(prefix: &str, words: &str) -> String {
    let mut parts = words.split_whitespace();
    let mut target = parts.next().unwrap_or("help").to_string();
    let (mut services, mut args): (Vec<&str>, Vec<&str>) = (Vec::new(), Vec::new());
    for word in parts {
        if target == "stop" && word == "--force" {
            target = "stop-force".to_string();
        } else if word.starts_with('-') || !args.is_empty() {
            args.push(word);
        } else {
            services.push(word);
        }
    }
    let mut text = format!("make {prefix}{target}");
    match services.as_slice() {
        [] => {}
        [one] => text.push_str(&format!(" SERVICE={one}")),
        many => text.push_str(&format!(" SERVICES=\"{}\"", many.join(" "))),
    }
    match args.as_slice() {
        [] => {}
        [one] => text.push_str(&format!(" ARGS={one}")),
        many => text.push_str(&format!(" ARGS=\"{}\"", many.join(" "))),
    }
    text
}

#[cfg(test)]
mod tests {
    use super::make_form;

    #[test]
    fn commands_become_make_targets_and_variables() {
        assert_eq!(make_form("", "cleanup"), "make cleanup");
        assert_eq!(make_form("", "logs redis"), "make logs SERVICE=redis");
        assert_eq!(make_form("", "start-bg api db"), "make start-bg SERVICES=\"api db\"");
        assert_eq!(make_form("", "stop --force"), "make stop-force");
        assert_eq!(make_form("", "logs api -f"), "make logs SERVICE=api ARGS=-f");
        assert_eq!(make_form("", "status --json -q"), "make status ARGS=\"--json -q\"");
        assert_eq!(make_form("stack-", "logs redis"), "make stack-logs SERVICE=redis");
    }
}
