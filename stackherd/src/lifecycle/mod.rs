//! The lifecycle of services: the start engine, the stop engine (five phases), the
//! supervisor and its pure decisions, and what they share (the project context, the
//! one state function, which processes belong to a service).

pub mod build;
mod compose_names;
mod context;
pub mod daemon;
pub mod drift;
pub mod fork_window;
pub mod launch;
pub mod monitor;
pub mod overview;
pub mod owner;
pub mod ports;
pub mod preempt;
pub mod preflight;
pub mod prepare;
pub mod processes;
pub mod reexec;
pub mod relays;
pub mod start;
pub mod state;
pub mod stop;
pub mod strays;
pub mod supervise;
pub mod takeover;

pub use context::Context;
