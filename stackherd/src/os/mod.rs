//! The operating system: which processes exist and belong to the project, spawning
//! services and other children, signals, pidfds, the subreaper, the interrupts xtask
//! itself receives. Linux facts stay in this layer.

pub mod caught_up;
pub mod cgroup;
pub mod child;
mod clone_into;
pub mod cookie;
pub mod exit;
pub mod flocks;
pub mod interrupts;
pub mod listeners;
pub mod memory;
pub mod port_holders;
mod posix_spawn;
pub mod process;
pub mod program;
pub mod pty;
pub mod scan;
pub mod signal;
pub mod spawn;
pub mod subreaper;
pub mod wake;

pub use exit::Exit;
pub use process::ServiceProcess;
pub use scan::ProcessInfo;
