//! The fixture service that the black-box tests run under xtask. Each flag simulates one
//! behaviour of a real service:
//!
//! - `--host ADDR`: where `--port` listens (default 127.0.0.1; 0.0.0.0 in a container).
//! - `--port N` (repeatable): listen on 127.0.0.1:N and answer every request with
//!   `HTTP/1.1 200 OK` (serves port and http health checks).
//! - `--count-requests FILE`: append a line to FILE for each request it answers (how
//!   often it is probed).
//! - `--startup-delay MS`: wait before listening (a slow service).
//! - `--log TEXT` (repeatable): print these lines at startup (log-line readiness, log tails).
//! - `--print-env NAME` (repeatable): print `NAME=value` (or `NAME unset`) at startup
//!   (environment precedence).
//! - `--append FILE`: append `NAME started` to FILE at startup (start order); NAME is
//!   `$XTASK_SERVICE`.
//! - `--ignore-sigterm`: ignore SIGTERM (a service that must be force-killed).
//! - `--on-sigterm TEXT`: a SIGTERM handler that prints TEXT and exits 0 (a service
//!   that shuts down through its own handler: a paused one runs it only once woken).
//! - `--exit-after MS` with `--exit-code N`: exit on its own (a crash during startup).
//! - `--spawn-child`: start a child in the same process group (a worker pool).
//! - `--spawn-daemon`: start a grandchild that calls setsid and is orphaned by a double
//!   fork, escaping the group (a daemonising tool); its PID is printed to the log.
//! - `--spawn-setpgid`: start a child in a process group of its own, same session (a
//!   tool that calls setpgid): the service's group signal misses it.
//! - `--spawn-lost MARK`: start, by a double fork with an empty environment, a process
//!   whose command line contains MARK: it has lost the cookie (a tool that clears its
//!   environment), so only `orphan_patterns` can find it.
//! - `--children N` with `--grandchildren M`: start N children that each start M
//!   children: a tree of N + N*M descendants.
//! - `--orphan-exit-after MS`: the same double fork, but the orphan exits after MS: the
//!   supervisor it is re-parented to must reap it (no zombie); its PID is printed as
//!   `orphan pid N`, then `orphan stage exited` once it is re-parented.
//!
//! - `--main-thread-exits`: once listening, the main thread ends and the others run on
//!   (/proc then shows the process as a zombie although it serves its ports).
//!
//! Without `--exit-after` it runs until signalled.

use std::io::{Read, Write};
use std::net::TcpListener;
use std::os::unix::process::CommandExt;
use std::process::Command;
use std::thread;
use std::time::Duration;

use nix::sys::signal::{SigHandler, Signal, signal};

#[derive(Default)]
struct Options {
    host: Option<String>,
    ports: Vec<u16>,
    startup_delay_ms: u64,
    logs: Vec<String>,
    print_env: Vec<String>,
    append: Option<String>,
    count_requests: Option<String>,
    ignore_sigterm: bool,
    on_sigterm: Option<String>,
    exit_after_ms: Option<u64>,
    exit_code: i32,
    spawn_child: bool,
    spawn_daemon: bool,
    orphan_exit_after_ms: Option<u64>,
    spawn_setpgid: bool,
    spawn_lost: Option<String>,
    main_thread_exits: bool,
    lost_stage: Option<String>,
    children: u32,
    grandchildren: u32,
    /// Internal: the middle process of the double fork, and what its orphan does.
    daemon_stage: bool,
    orphan_stage: Option<u64>,
}

fn main() {
    let options = match parse(std::env::args().skip(1)) {
        Ok(options) => options,
        Err(err) => {
            eprintln!("fixture: {err}");
            std::process::exit(64);
        }
    };
    if let Some(mark) = &options.lost_stage {
        let child = self_command(&["--log", mark]).env_clear().spawn_setsid();
        println!("lost pid {child}");
        return;
    }
    if let Some(ms) = options.orphan_stage {
        let child = self_command(&["--exit-after", &ms.to_string()]).spawn_setsid();
        println!("orphan pid {child}");
        return;
    }
    if options.daemon_stage {
        // The middle process: start the grandchild in a session of its own, then exit
        // so that it is orphaned and re-parented away from the service's tree.
        let child = self_command(&["--log", "daemon grandchild running"]).spawn_setsid();
        println!("daemon pid {}", child);
        return;
    }
    if options.ignore_sigterm {
        // SAFETY: installing SIG_IGN runs no handler code.
        unsafe { signal(Signal::SIGTERM, SigHandler::SigIgn) }.expect("ignore SIGTERM");
    }
    if let Some(text) = &options.on_sigterm {
        let _ = SIGTERM_LINE.set(format!("{text}\n").into_bytes());
        // SAFETY: the handler only calls write(2) and _exit(2), both async-signal-safe,
        // on a buffer set before it is installed and never changed.
        unsafe { signal(Signal::SIGTERM, SigHandler::Handler(on_sigterm)) }.expect("handle SIGTERM");
    }
    let name = std::env::var("XTASK_SERVICE").unwrap_or_else(|_| "fixture".into());
    if let Some(file) = &options.append {
        append_line(file, &format!("{name} started"));
    }
    for line in &options.logs {
        println!("{line}");
    }
    for name in &options.print_env {
        match std::env::var(name) {
            Ok(value) => println!("{name}={value}"),
            Err(_) => println!("{name} unset"),
        }
    }
    if options.spawn_child {
        let mut child = self_command(&["--log", "child running"]).spawn().expect("spawn child");
        println!("child pid {}", child.id());
        thread::spawn(move || child.wait());
    }
    if let Some(ms) = options.orphan_exit_after_ms {
        run_stage(&["--orphan-stage", &ms.to_string()]);
        // The stage has exited: from now on the orphan has its new parent.
        println!("orphan stage exited");
    }
    if options.spawn_setpgid {
        let mut child = self_command(&["--log", "setpgid child running"])
            .process_group(0)
            .spawn()
            .expect("spawn");
        println!("setpgid pid {}", child.id());
        thread::spawn(move || child.wait());
    }
    if let Some(mark) = &options.spawn_lost {
        run_stage(&["--lost-stage", mark]);
    }
    for _ in 0..options.children {
        let mut child = self_command(&["--children", &options.grandchildren.to_string()])
            .spawn()
            .expect("spawn tree child");
        thread::spawn(move || child.wait());
    }
    if options.spawn_daemon {
        run_stage(&["--daemon-stage"]);
    }
    thread::sleep(Duration::from_millis(options.startup_delay_ms));
    for &port in &options.ports {
        let host = options.host.as_deref().unwrap_or("127.0.0.1");
        let listener = TcpListener::bind((host, port)).unwrap_or_else(|err| {
            eprintln!("fixture: cannot listen on port {port}: {err}");
            std::process::exit(65);
        });
        println!("{name} listening on port {port}");
        let count = options.count_requests.clone();
        thread::spawn(move || serve(listener, count));
    }
    if let Some(ms) = options.exit_after_ms {
        thread::sleep(Duration::from_millis(ms));
        println!("{name} exiting with code {}", options.exit_code);
        if let Some(file) = &options.append {
            append_line(file, &format!("{name} exited"));
        }
        std::process::exit(options.exit_code);
    }
    if options.main_thread_exits {
        println!("{name}: main thread exiting");
        // SAFETY: exit(2), not exit_group(2): ends only this thread, without unwinding
        // (pthread_exit would unwind through Rust frames and abort). The other threads
        // own everything they use (each listener was moved into its thread).
        unsafe { nix::libc::syscall(nix::libc::SYS_exit, 0) };
    }
    loop {
        thread::park();
    }
}

/// What the SIGTERM handler prints (`--on-sigterm`).
static SIGTERM_LINE: std::sync::OnceLock<Vec<u8>> = std::sync::OnceLock::new();

extern "C" fn on_sigterm(_: nix::libc::c_int) {
    if let Some(line) = SIGTERM_LINE.get() {
        // SAFETY: write(2) of a buffer that lives as long as the process.
        let _ = unsafe { nix::libc::write(1, line.as_ptr().cast(), line.len()) };
    }
    // SAFETY: _exit(2) ends the process without running anything else.
    unsafe { nix::libc::_exit(0) }
}

/// Runs the middle process of a double fork and waits for it: it starts the
/// grandchild in a session of its own and exits, orphaning it.
fn run_stage(args: &[&str]) {
    let mut stage = self_command(args).spawn().expect("spawn stage");
    stage.wait().expect("wait for stage");
}

fn append_line(file: &str, line: &str) {
    let mut f = std::fs::OpenOptions::new()
        .create(true)
        .append(true)
        .open(file)
        .expect("open append file");
    writeln!(f, "{line}").expect("append");
}

fn parse(mut args: impl Iterator<Item = String>) -> Result<Options, String> {
    let mut o = Options::default();
    while let Some(arg) = args.next() {
        let mut value = || args.next().ok_or_else(|| format!("{arg} needs a value"));
        match arg.as_str() {
            "--host" => o.host = Some(value()?),
            "--port" => o.ports.push(value()?.parse().map_err(|e| format!("--port: {e}"))?),
            "--startup-delay" => o.startup_delay_ms = value()?.parse().map_err(|e| format!("--startup-delay: {e}"))?,
            "--log" => o.logs.push(value()?),
            "--print-env" => o.print_env.push(value()?),
            "--append" => o.append = Some(value()?),
            "--count-requests" => o.count_requests = Some(value()?),
            "--ignore-sigterm" => o.ignore_sigterm = true,
            "--on-sigterm" => o.on_sigterm = Some(value()?),
            "--exit-after" => o.exit_after_ms = Some(value()?.parse().map_err(|e| format!("--exit-after: {e}"))?),
            "--exit-code" => o.exit_code = value()?.parse().map_err(|e| format!("--exit-code: {e}"))?,
            "--spawn-child" => o.spawn_child = true,
            "--spawn-daemon" => o.spawn_daemon = true,
            "--daemon-stage" => o.daemon_stage = true,
            "--orphan-exit-after" => {
                o.orphan_exit_after_ms = Some(value()?.parse().map_err(|e| format!("--orphan-exit-after: {e}"))?)
            }
            "--spawn-setpgid" => o.spawn_setpgid = true,
            "--spawn-lost" => o.spawn_lost = Some(value()?),
            "--main-thread-exits" => o.main_thread_exits = true,
            "--lost-stage" => o.lost_stage = Some(value()?),
            "--children" => o.children = value()?.parse().map_err(|e| format!("--children: {e}"))?,
            "--grandchildren" => o.grandchildren = value()?.parse().map_err(|e| format!("--grandchildren: {e}"))?,
            "--orphan-stage" => o.orphan_stage = Some(value()?.parse().map_err(|e| format!("--orphan-stage: {e}"))?),
            other => return Err(format!("unknown flag {other}")),
        }
    }
    Ok(o)
}

fn self_command(args: &[&str]) -> Command {
    let mut command = Command::new(std::env::current_exe().expect("own path"));
    command.args(args);
    command
}

trait SpawnSetsid {
    fn spawn_setsid(&mut self) -> u32;
}

impl SpawnSetsid for Command {
    /// Spawns in a new session (setsid), as daemons do.
    fn spawn_setsid(&mut self) -> u32 {
        // SAFETY: setsid(2) is async-signal-safe and touches no parent memory.
        unsafe {
            self.pre_exec(|| nix::unistd::setsid().map(|_| ()).map_err(std::io::Error::from));
        }
        self.spawn().expect("spawn daemon").id()
    }
}

fn serve(listener: TcpListener, count: Option<String>) {
    for stream in listener.incoming() {
        let Ok(mut stream) = stream else { continue };
        if let Some(file) = &count {
            append_line(file, "request");
        }
        let mut buf = [0u8; 1024];
        let _ = stream.set_read_timeout(Some(Duration::from_millis(200)));
        let _ = stream.read(&mut buf);
        let _ = stream.write_all(b"HTTP/1.1 200 OK\r\nContent-Length: 3\r\nConnection: close\r\n\r\nok\n");
    }
}
