//! One service and what every engine shares about it: the project context, the one
//! function that says what state a service is in, which live processes are its own,
//! launching it (either kind), its log relays, its restart policy's pure decisions,
//! the ports chosen for it, its build, and the supervisor's record. The engines above
//! (`stop`, `supervise`, `start`, `orchestrate`) use these; none of these uses them.

pub mod auto_ports;
pub mod build;
mod compose_names;
mod context;
pub mod daemon;
pub mod drift;
pub mod fork_window;
pub mod launch;
pub mod monitor;
pub mod owner;
pub mod preempt;
pub mod processes;
pub mod reexec;
pub mod relays;
pub mod restart_policy;
pub mod status;

pub use context::Context;
