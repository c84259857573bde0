//! Black-box tests: the real xtask binary against real fixture services.

mod completions;
mod config_errors;
mod containers;
mod faults;
mod harness;
mod idle;
mod layers;
mod lifecycle;
mod logs;
mod parser;
mod private_state;
mod real_servers;
mod relay;
mod safety;
mod security;
mod shaping;
mod stop;
mod supervision;
mod team_stack;
mod tidy;
mod tmux;
mod tui;
mod unwritable;
mod watch;
mod watch_changes;
mod workflow;
