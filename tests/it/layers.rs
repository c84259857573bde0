//! The layer rules of `stackherd/src`, checked as tests: folders are layers, a file imports
//! only from its own layer or those below it, no files import each other in a circle,
//! only `ui` prints, only `state` writes files, only `os/signal.rs` sends signals, and
//! no file is over 500 lines.
//! ARCHITECTURE.md states the same rules; each has a test below that feeds it a
//! violation, so none of them can pass by checking nothing.

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};

use regex::Regex;

/// The layers of `stackherd/src`, top down: a module may use its own layer and those below.
const LAYERS: &[&[&str]] = &[
    &["main", "lib"],
    &["cli", "commands"],
    &["orchestrate"],
    &["start"],
    &["supervise"],
    &["stop"],
    &["service"],
    &["probe"],
    &["docker"],
    &["os"],
    &["state"],
    &["error"],
    &["config"],
    &["poll", "ui"],
];

/// What may print (to stdout or stderr).
const PRINTS: &[&str] = &["ui"];
/// What may create, write, rename or remove files: the state directory's layer, and
/// the cgroup filesystem's one file (`cgroup.kill`, `cgroup.freeze`, directories).
const WRITES: &[&str] = &["state/", "os/cgroup.rs"];
/// The modules that may send signals: signals, and `cgroup.kill`.
const SIGNALS: &[&str] = &["os/signal.rs", "os/cgroup.rs"];

/// One source file: its path below `stackherd/src` and its text.
struct Source {
    path: String,
    text: String,
}

fn sources() -> Vec<Source> {
    let root = Path::new(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .expect("workspace root")
        .join("stackherd/src");
    let mut files = Vec::new();
    collect(&root, &mut files);
    files
        .into_iter()
        .map(|file| Source {
            path: file
                .strip_prefix(&root)
                .expect("below src")
                .to_string_lossy()
                .into_owned(),
            text: std::fs::read_to_string(&file).expect("read source"),
        })
        .collect()
}

fn collect(dir: &Path, files: &mut Vec<PathBuf>) {
    for entry in std::fs::read_dir(dir).expect("read dir").flatten() {
        let path = entry.path();
        if path.is_dir() {
            collect(&path, files);
        } else if path.extension().is_some_and(|e| e == "rs") {
            files.push(path);
        }
    }
}

/// The module path of a file: `os/signal.rs` is `[os, signal]`, `os/mod.rs` is `[os]`.
fn module_of(path: &str) -> Vec<String> {
    let mut parts: Vec<String> = path.trim_end_matches(".rs").split('/').map(str::to_string).collect();
    if parts.last().is_some_and(|p| p == "mod") || parts == ["lib"] || parts == ["main"] {
        parts.pop();
    }
    parts
}

fn rank(top: &str) -> Option<usize> {
    LAYERS.iter().position(|layer| layer.contains(&top))
}

/// The code without comments (so that a comment naming a module is no import) and
/// without its unit tests (the `#[cfg(test)]` module that ends a file).
fn code(text: &str) -> String {
    let text = text.split("#[cfg(test)]").next().unwrap_or(text);
    text.lines()
        .map(|line| line.split_once("//").map_or(line, |(code, _)| code))
        .collect::<Vec<_>>()
        .join("\n")
}

/// Every module path the file refers to, absolute (`crate::` and `super::` resolved),
/// from its `use` trees and from paths written inline.
fn references(source: &Source) -> Vec<Vec<String>> {
    let here = module_of(&source.path);
    let code = code(&source.text);
    let mut paths: Vec<String> = Vec::new();
    let uses = Regex::new(r"(?s)\buse\s+([^;]+);").expect("regex");
    for tree in uses.captures_iter(&code) {
        expand(&tree[1].split_whitespace().collect::<String>(), "", &mut paths);
    }
    let inline = Regex::new(r"\b(?:crate|super)(?:::[A-Za-z_][A-Za-z0-9_]*)+").expect("regex");
    paths.extend(inline.find_iter(&code).map(|m| m.as_str().to_string()));
    let resolved: BTreeSet<Vec<String>> = paths
        .iter()
        .filter_map(|path| resolve(&here, &source.path, path))
        .collect();
    resolved.into_iter().collect()
}

/// `a::{b, c::{d, e}}` into `a::b`, `a::c::d`, `a::c::e`.
fn expand(tree: &str, prefix: &str, out: &mut Vec<String>) {
    let tree = tree.trim_start_matches("pub").trim_start_matches("(crate)");
    match tree.find('{') {
        None => out.push(format!("{prefix}{tree}")),
        Some(open) => {
            let head = &tree[..open];
            let body = &tree[open + 1..tree.rfind('}').unwrap_or(tree.len())];
            let mut depth = 0;
            let mut start = 0;
            for (i, c) in body.char_indices() {
                match c {
                    '{' => depth += 1,
                    '}' => depth -= 1,
                    ',' if depth == 0 => {
                        expand(&body[start..i], &format!("{prefix}{head}"), out);
                        start = i + 1;
                    }
                    _ => {}
                }
            }
            if start < body.len() {
                expand(&body[start..], &format!("{prefix}{head}"), out);
            }
        }
    }
}

/// An absolute module path for `crate::…` and `super::…`; `None` for other crates.
fn resolve(here: &[String], path: &str, reference: &str) -> Option<Vec<String>> {
    let parts: Vec<&str> = reference.split("::").filter(|p| !p.is_empty()).collect();
    // A file's `super` is its parent module; a folder's front (mod.rs) is that module.
    let mut base: Vec<String> = here.to_vec();
    if !path.ends_with("mod.rs") && !base.is_empty() {
        base.pop();
    }
    let rest = match parts.first() {
        Some(&"crate") => {
            base.clear();
            &parts[1..]
        }
        Some(&"super") => {
            let mut rest = &parts[..];
            let mut first = true;
            while rest.first() == Some(&"super") {
                if !first {
                    base.pop();
                }
                first = false;
                rest = &rest[1..];
            }
            if path.ends_with("mod.rs") {
                base.pop();
            }
            rest
        }
        _ => return None,
    };
    Some(base.into_iter().chain(rest.iter().map(|s| s.to_string())).collect())
}

/// The longest prefix of `path` that is a module of the crate.
fn file_of(modules: &BTreeSet<Vec<String>>, path: &[String]) -> Option<Vec<String>> {
    (1..=path.len())
        .rev()
        .map(|n| path[..n].to_vec())
        .find(|m| modules.contains(m))
}

/// Imports of a higher layer: `file: uses module (layer) from layer`.
fn climbs(sources: &[Source]) -> Vec<String> {
    let mut found = Vec::new();
    for source in sources {
        let here = module_of(&source.path);
        let own = here.first().map_or("lib", String::as_str);
        let Some(own_rank) = rank(own) else {
            found.push(format!("{}: `{own}` is in no layer; add it to LAYERS", source.path));
            continue;
        };
        for target in references(source) {
            let Some(top) = target.first() else { continue };
            match rank(top) {
                Some(r) if r < own_rank => {
                    found.push(format!("{}: uses `{}`, a higher layer", source.path, target.join("::")))
                }
                Some(_) => {}
                None => found.push(format!("{}: uses `{}`, in no layer", source.path, target.join("::"))),
            }
        }
    }
    found
}

/// Circles of files that import each other. A module's own submodules are its to
/// declare and re-export, so an edge from a module to its descendants does not count.
fn circles(sources: &[Source]) -> Vec<Vec<String>> {
    let modules: BTreeSet<Vec<String>> = sources.iter().map(|s| module_of(&s.path)).collect();
    let mut edges: BTreeMap<Vec<String>, BTreeSet<Vec<String>>> = BTreeMap::new();
    for source in sources {
        let here = module_of(&source.path);
        for target in references(source) {
            if let Some(file) = file_of(&modules, &target)
                && file != here
                && !file.starts_with(&here)
            {
                edges.entry(here.clone()).or_default().insert(file);
            }
        }
    }
    let mut found = Vec::new();
    let mut done = BTreeSet::new();
    for start in &modules {
        let mut stack = vec![start.clone()];
        walk(start, &edges, &mut stack, &mut done, &mut found);
    }
    found
}

fn walk(
    node: &Vec<String>,
    edges: &BTreeMap<Vec<String>, BTreeSet<Vec<String>>>,
    stack: &mut Vec<Vec<String>>,
    done: &mut BTreeSet<Vec<String>>,
    found: &mut Vec<Vec<String>>,
) {
    if !done.insert(node.clone()) {
        return;
    }
    for next in edges.get(node).into_iter().flatten() {
        if let Some(at) = stack.iter().position(|n| n == next) {
            found.push(stack[at..].iter().map(|m| m.join("::")).collect());
            continue;
        }
        stack.push(next.clone());
        walk(next, edges, stack, done, found);
        stack.pop();
    }
}

/// Files outside `allowed` whose code matches `pattern`.
fn offenders(sources: &[Source], allowed: impl Fn(&str) -> bool, pattern: &str) -> Vec<String> {
    let re = Regex::new(pattern).expect("regex");
    sources
        .iter()
        .filter(|s| !allowed(&s.path))
        .filter_map(|s| re.find(&code(&s.text)).map(|m| format!("{}: `{}`", s.path, m.as_str())))
        .collect()
}

fn printers(sources: &[Source]) -> Vec<String> {
    let allowed = |path: &str| {
        PRINTS
            .iter()
            .any(|m| path == format!("{m}.rs") || path.starts_with(&format!("{m}/")))
    };
    offenders(sources, allowed, r"\b(e?println!|e?print!|io::stdout\(|io::stderr\()")
}

fn writers(sources: &[Source]) -> Vec<String> {
    let allowed = |path: &str| WRITES.iter().any(|m| path.starts_with(m));
    offenders(
        sources,
        allowed,
        r"\b(fs::write|File::create|OpenOptions|create_dir_all|remove_file|remove_dir|fs::rename|renameat2)\b",
    )
}

fn signallers(sources: &[Source]) -> Vec<String> {
    offenders(
        sources,
        |path| SIGNALS.contains(&path),
        r"\b(kill|killpg|pidfd_send_signal|tgkill)\(|\.kill\(\)",
    )
}

fn source(path: &str, text: &str) -> Source {
    Source {
        path: path.to_string(),
        text: text.to_string(),
    }
}

#[test]
fn no_module_imports_a_higher_layer() {
    let found = climbs(&sources());
    assert!(found.is_empty(), "imports that climb:\n{}", found.join("\n"));
}

#[test]
fn no_files_import_each_other_in_a_circle() {
    let found = circles(&sources());
    assert!(found.is_empty(), "circles: {found:?}");
}

#[test]
fn only_ui_prints_only_state_writes_only_os_signal_signals() {
    let sources = sources();
    let mut found = printers(&sources);
    found.extend(writers(&sources));
    found.extend(signallers(&sources));
    assert!(found.is_empty(), "outside their module:\n{}", found.join("\n"));
}

/// Files past this many lines hold more than one job.
const MAX_LINES: usize = 500;

#[test]
fn no_file_is_over_500_lines() {
    let long: Vec<String> = sources()
        .iter()
        .map(|s| (s.path.clone(), s.text.lines().count()))
        .filter(|(_, lines)| *lines > MAX_LINES)
        .map(|(path, lines)| format!("{path}: {lines} lines"))
        .collect();
    assert!(long.is_empty(), "split these files:\n{}", long.join("\n"));
}

#[test]
fn every_rule_reports_a_violation() {
    let climbing = [source("state/record.rs", "use crate::service::Context;\n")];
    assert_eq!(
        climbs(&climbing),
        ["state/record.rs: uses `service::Context`, a higher layer"]
    );
    let grouped = [source(
        "os/spawn.rs",
        "use crate::{config::Service, probe::{Prober, ProbeSite}};\n",
    )];
    assert_eq!(climbs(&grouped).len(), 2, "{:?}", climbs(&grouped));
    let engines = [source("stop/phases.rs", "use crate::supervise::Supervisor;\n")];
    assert_eq!(
        climbs(&engines),
        ["stop/phases.rs: uses `supervise::Supervisor`, a higher layer"]
    );
    let inline = [source("config/mod.rs", "fn f() { crate::state::now_ms(); }\n")];
    assert_eq!(climbs(&inline).len(), 1);
    let commented = [source("config/mod.rs", "// see crate::state::now_ms\n")];
    assert!(climbs(&commented).is_empty());

    let circle = [
        source("state/mod.rs", "mod a;\nmod b;\n"),
        source("state/a.rs", "use super::b::B;\n"),
        source("state/b.rs", "use super::a::A;\n"),
    ];
    assert_eq!(circles(&circle), [vec!["state::a".to_string(), "state::b".to_string()]]);
    let front = [
        source("state/mod.rs", "mod a;\npub use a::A;\n"),
        source("state/a.rs", "use super::Registry;\n"),
    ];
    assert!(circles(&front).is_empty(), "a folder's front may re-export its files");

    assert_eq!(printers(&[source("os/x.rs", "println!(\"hi\");")]).len(), 1);
    assert_eq!(writers(&[source("start/x.rs", "std::fs::write(p, b)")]).len(), 1);
    assert!(writers(&[source("state/x.rs", "std::fs::write(p, b)")]).is_empty());
    assert_eq!(signallers(&[source("commands/x.rs", "child.kill()")]).len(), 1);
    assert_eq!(signallers(&[source("os/child.rs", "signal::kill(pid, sig)")]).len(), 1);
    assert!(signallers(&[source("os/signal.rs", "signal::kill(pid, sig)")]).is_empty());
    assert!(signallers(&[source("stop/x.rs", "force_kill(ctx)")]).is_empty());
}
