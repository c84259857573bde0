//! A service for unit tests, so that a test names only the fields it is about.

use std::time::Duration;

use super::{CommandLine, RestartPolicy, Service};

/// A service for unit tests: `true` in `/`, no port, no health check, the defaults
/// elsewhere; a test sets what it is about with `Service { field, ..Service::for_test("s") }`.
impl Service {
    pub fn for_test(name: &str) -> Service {
        Service {
            name: name.to_string(),
            command: CommandLine::Shell("true".into()),
            cwd: "/".into(),
            env: vec![],
            ports: vec![],
            depends_on: vec![],
            health: None,
            stop_signal: nix::sys::signal::Signal::SIGTERM,
            stop_timeout: Duration::from_secs(1),
            stop_command: None,
            restart: RestartPolicy::No,
            max_restarts: None,
            restart_delay: Duration::from_secs(1),
            restart_window: Duration::from_secs(60),
            success_exit_codes: vec![0],
            startup_delay: Duration::ZERO,
            pid_file: None,
            build: None,
            build_timeout: None,
            container: None,
            watch: None,
            restart_with: false,
            log_rotation: Default::default(),
            tty: false,
            profiles: vec![],
            disabled: false,
            group: None,
            auto_port: false,
        }
    }
}
