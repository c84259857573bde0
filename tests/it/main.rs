//! Black-box tests: the real xtask binary against real fixture services.

mod completions;
mod config_errors;
mod containers;
mod faults;
mod harness;
mod layers;
mod lifecycle;
mod logs;
mod parser;
mod real_servers;
mod safety;
mod shaping;
mod supervision;
mod team_stack;
mod tidy;
mod tmux;
mod tui;
mod watch;
mod workflow;
