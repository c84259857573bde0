//! A development-environment process manager: the library behind `cargo xtask`.
//!
//! Folders are layers; a module imports only from layers below its own (ARCHITECTURE.md
//! has the map, and the tidy test holds the order).
// Nothing a user or the OS can cause may panic: no unwrap or expect, no indexing that
// can be out of bounds, no arithmetic that can overflow (deadlines come from user
// durations). Tests may.
#![cfg_attr(
    not(test),
    deny(
        clippy::unwrap_used,
        clippy::expect_used,
        clippy::indexing_slicing,
        clippy::arithmetic_side_effects
    )
)]

#[cfg(not(target_os = "linux"))]
compile_error!(
    "xtask runs on Linux only: it reads /proc (process identity, the cookie scan, \
     listening sockets), uses pidfds, PR_SET_CHILD_SUBREAPER, posix_spawn's SETSID and \
     cgroup v2. A port needs another `os` layer (libproc or sysctl on macOS, kqueue \
     instead of pidfds) behind the same interface."
);

pub mod cli;
mod commands;
pub mod config;
mod docker;
pub mod error;
mod lifecycle;
mod os;
mod poll;
mod probe;
mod state;
pub mod ui;

pub use commands::relay;
pub use commands::run;
