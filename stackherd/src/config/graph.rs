//! The dependency graph: closures, start levels and cycle detection.
//!
//! All functions here are pure; they work on names so that callers can mix services
//! from the config with names found only in the state directory.

use std::collections::{BTreeSet, HashMap};

use super::Service;

pub struct Graph<'c> {
    /// Service name to the names it depends on, in file order.
    deps: Vec<(&'c str, Vec<&'c str>)>,
}

impl<'c> Graph<'c> {
    pub fn new(services: &'c [Service]) -> Self {
        Graph {
            deps: services
                .iter()
                .map(|s| (s.name.as_str(), s.dependency_names().collect()))
                .collect(),
        }
    }

    fn dependencies_of(&self, name: &str) -> &[&'c str] {
        self.deps
            .iter()
            .find(|(n, _)| *n == name)
            .map_or(&[], |(_, d)| d.as_slice())
    }

    fn dependents_of(&self, name: &str) -> Vec<&'c str> {
        self.deps
            .iter()
            .filter(|(_, d)| d.contains(&name))
            .map(|(n, _)| *n)
            .collect()
    }

    /// `names` and everything they depend on, transitively, in file order.
    pub fn with_dependencies(&self, names: &[String]) -> Vec<String> {
        self.closure(names, |n| self.dependencies_of(n).to_vec())
    }

    /// `names` and everything that depends on them, transitively, in file order.
    pub fn with_dependents(&self, names: &[String]) -> Vec<String> {
        self.closure(names, |n| self.dependents_of(n))
    }

    fn closure(&self, names: &[String], next: impl Fn(&str) -> Vec<&'c str>) -> Vec<String> {
        let mut seen: BTreeSet<String> = BTreeSet::new();
        let mut todo: Vec<String> = names.to_vec();
        while let Some(name) = todo.pop() {
            if seen.insert(name.clone()) {
                todo.extend(next(&name).into_iter().map(str::to_string));
            }
        }
        let mut ordered: Vec<String> = self
            .deps
            .iter()
            .map(|(n, _)| n.to_string())
            .filter(|n| seen.contains(n))
            .collect();
        // Names unknown to the config (from old records) keep their given order, last.
        let unknown: Vec<String> = names.iter().filter(|n| !ordered.contains(n)).cloned().collect();
        ordered.extend(unknown);
        ordered
    }

    /// Splits `names` into levels: every service's dependencies (among `names`) sit in
    /// earlier levels. Level 0 has no dependencies. Assumes the graph has no cycle.
    pub fn levels(&self, names: &[String]) -> Vec<Vec<String>> {
        let mut level_of: HashMap<&str, usize> = HashMap::new();
        let mut levels: Vec<Vec<String>> = Vec::new();
        let mut remaining: Vec<&String> = names.iter().collect();
        while !remaining.is_empty() {
            let before = remaining.len();
            remaining.retain(|name| {
                let deps: Vec<&str> = self
                    .dependencies_of(name)
                    .iter()
                    .copied()
                    .filter(|d| names.iter().any(|n| n == d))
                    .collect();
                if deps.iter().all(|d| level_of.contains_key(d)) {
                    let level = deps
                        .iter()
                        .filter_map(|d| level_of.get(d))
                        .map(|l| l.saturating_add(1))
                        .max()
                        .unwrap_or(0);
                    level_of.insert(name.as_str(), level);
                    while levels.len() <= level {
                        levels.push(Vec::new());
                    }
                    if let Some(at) = levels.get_mut(level) {
                        at.push(name.to_string());
                    }
                    false
                } else {
                    true
                }
            });
            if remaining.len() == before {
                // A cycle: validation rejects these, but never loop forever on one.
                levels.push(remaining.drain(..).cloned().collect());
            }
        }
        levels
    }

    /// The first cycle found, as a path that ends where it starts: `a -> b -> a`.
    pub fn find_cycle(&self) -> Option<Vec<String>> {
        #[derive(Clone, Copy, PartialEq)]
        enum Mark {
            New,
            OnPath,
            Done,
        }
        fn visit<'c>(
            graph: &Graph<'c>,
            name: &'c str,
            marks: &mut HashMap<&'c str, Mark>,
            path: &mut Vec<&'c str>,
        ) -> Option<Vec<String>> {
            match marks.get(name).copied().unwrap_or(Mark::New) {
                Mark::Done => return None,
                Mark::OnPath => {
                    let start = path.iter().position(|n| *n == name).unwrap_or(0);
                    let mut cycle: Vec<String> = path.iter().skip(start).map(|n| n.to_string()).collect();
                    cycle.push(name.to_string());
                    return Some(cycle);
                }
                Mark::New => {}
            }
            marks.insert(name, Mark::OnPath);
            path.push(name);
            for dep in graph.dependencies_of(name) {
                if let Some(cycle) = visit(graph, dep, marks, path) {
                    return Some(cycle);
                }
            }
            path.pop();
            marks.insert(name, Mark::Done);
            None
        }
        let mut marks = HashMap::new();
        for (name, _) in &self.deps {
            if let Some(cycle) = visit(self, name, &mut marks, &mut Vec::new()) {
                return Some(cycle);
            }
        }
        None
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::{Condition, Dependency};

    fn services(spec: &[(&str, &[&str])]) -> Vec<Service> {
        spec.iter()
            .map(|(name, deps)| Service {
                depends_on: deps
                    .iter()
                    .map(|d| Dependency {
                        service: d.to_string(),
                        condition: Condition::Healthy,
                        restart: false,
                    })
                    .collect(),
                max_restarts: Some(0),
                ..Service::for_test(name)
            })
            .collect()
    }

    fn names(list: &[&str]) -> Vec<String> {
        list.iter().map(|s| s.to_string()).collect()
    }

    #[test]
    fn levels_follow_dependencies() {
        let s = services(&[("api", &["db"]), ("db", &[]), ("web", &["api", "db"]), ("cache", &[])]);
        let g = Graph::new(&s);
        let all = names(&["api", "db", "web", "cache"]);
        assert_eq!(
            g.levels(&all),
            vec![names(&["db", "cache"]), names(&["api"]), names(&["web"])]
        );
    }

    #[test]
    fn closures_go_both_ways() {
        let s = services(&[("db", &[]), ("api", &["db"]), ("web", &["api"]), ("other", &[])]);
        let g = Graph::new(&s);
        assert_eq!(g.with_dependencies(&names(&["web"])), names(&["db", "api", "web"]));
        assert_eq!(g.with_dependents(&names(&["api"])), names(&["api", "web"]));
    }

    #[test]
    fn cycles_are_printed_as_paths() {
        type Spec<'a> = &'a [(&'a str, &'a [&'a str])];
        let cases: &[(Spec, Option<&str>)] = &[
            (&[("a", &["b"]), ("b", &["a"])], Some("a -> b -> a")),
            (&[("a", &["a"])], Some("a -> a")),
            (
                &[("x", &[]), ("a", &["b"]), ("b", &["c"]), ("c", &["a"])],
                Some("a -> b -> c -> a"),
            ),
            (&[("a", &["b"]), ("b", &[])], None),
        ];
        for (spec, expected) in cases {
            let s = services(spec);
            let found = Graph::new(&s).find_cycle().map(|c| c.join(" -> "));
            assert_eq!(found.as_deref(), *expected, "for {spec:?}");
        }
    }
}
