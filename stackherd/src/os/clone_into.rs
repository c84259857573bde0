//! Spawning a service straight into its cgroup: `clone3(CLONE_INTO_CGROUP)`, then the
//! same set-up `posix_spawn` does (new session, default signals, stdio) and `execve`.
//!
//! glibc's `posix_spawn` cannot place a child in a cgroup before 2.39, and moving a
//! child in after it started leaves a moment in which it can fork out (a move by the
//! child itself, a write to `cgroup.procs` before its exec, takes the kernel's global
//! cgroup lock, far slower). The clone has fork semantics: the child runs only
//! async-signal-safe system calls on data prepared before the clone, then execs or
//! reports its errno through a close-on-exec pipe and exits.

use std::ffi::{CStr, CString, c_char};
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd};

use nix::errno::Errno;
use nix::libc;
use nix::sys::signal::{SigSet, SigmaskHow};

/// The kernel's `struct clone_args` (version 2, with `cgroup`).
#[repr(C)]
#[derive(Default)]
struct CloneArgs {
    flags: u64,
    pidfd: u64,
    child_tid: u64,
    parent_tid: u64,
    exit_signal: u64,
    stack: u64,
    stack_size: u64,
    tls: u64,
    set_tid: u64,
    set_tid_size: u64,
    cgroup: u64,
}

const CLONE_INTO_CGROUP: u64 = 0x2_0000_0000;
/// The pidfd comes with the clone: readable once the child ends, for a waiter to sleep
/// on instead of polling.
const CLONE_PIDFD: u64 = libc::CLONE_PIDFD as u64;

/// What the child needs, built before the clone: the child may not allocate.
pub struct Exec<'a> {
    pub program: &'a CStr,
    pub args: &'a [CString],
    pub env: &'a [CString],
    pub cwd: &'a CStr,
    /// stdout and stderr.
    pub log: i32,
}

/// Why a spawn into a cgroup failed.
pub enum Failure {
    /// The clone itself: no clone3, or no permission on the cgroup.
    Clone,
    /// The child's set-up or exec (the program's fault, not the cgroup's).
    Exec(Errno),
}

/// Starts `exec` in the cgroup open as `cgroup`, as the leader of a new session.
/// Returns the child's PID once it has exec'd, and the pidfd the clone made with it.
pub fn spawn(exec: &Exec, cgroup: &OwnedFd) -> Result<(i32, Option<OwnedFd>), Failure> {
    let argv: Vec<*const c_char> = exec.args.iter().map(|a| a.as_ptr()).chain([std::ptr::null()]).collect();
    let envp: Vec<*const c_char> = exec.env.iter().map(|e| e.as_ptr()).chain([std::ptr::null()]).collect();
    let (report, reported) = nix::unistd::pipe2(nix::fcntl::OFlag::O_CLOEXEC).map_err(|_| Failure::Clone)?;
    let job = Job {
        exec,
        argv: &argv,
        envp: &envp,
        report: reported.as_raw_fd(),
    };
    let mut pidfd: i32 = -1;
    let pid = clone_child(&job, cgroup, &mut pidfd);
    drop(reported);
    if pid < 0 {
        return Err(Failure::Clone);
    }
    let pid = pid as i32;
    // SAFETY: the kernel wrote a new descriptor here (CLONE_PIDFD) for a clone that
    // succeeded; nothing else owns it.
    let pidfd = (pidfd >= 0).then(|| unsafe { OwnedFd::from_raw_fd(pidfd) });
    let mut errno = [0u8; 4];
    match read_full(&report, &mut errno) {
        // The pipe closed on exec: the program runs.
        0 => Ok((pid, pidfd)),
        _ => {
            let _ = nix::sys::wait::waitpid(nix::unistd::Pid::from_raw(pid), None);
            Err(Failure::Exec(Errno::from_raw(i32::from_ne_bytes(errno))))
        }
    }
}

/// What the child runs with, all prepared before the clone.
struct Job<'a> {
    exec: &'a Exec<'a>,
    argv: &'a [*const c_char],
    envp: &'a [*const c_char],
    report: i32,
}

/// Clones a child that runs `job` in `cgroup`: a fork-like `clone3` (the child gets a
/// copy of this process, as after `fork`, and returns from the same call). Signals
/// stay blocked across the clone, so no handler of xtask's ever runs in the child; it
/// resets them all before unblocking. Returns the PID, or -1.
///
/// Not `CLONE_VM | CLONE_VFORK`, as `posix_spawn` does: that needs the child to start
/// on a stack of its own, which only hand-written assembly can give a raw `clone3`.
/// Copying the page tables costs about 0.4 ms a service (docs/benchmark.md).
fn clone_child(job: &Job, cgroup: &OwnedFd, pidfd: &mut i32) -> i64 {
    let args = CloneArgs {
        flags: CLONE_INTO_CGROUP | CLONE_PIDFD,
        pidfd: std::ptr::from_mut(pidfd) as u64,
        exit_signal: libc::SIGCHLD as u64,
        cgroup: cgroup.as_raw_fd() as u64,
        ..CloneArgs::default()
    };
    let before = SigSet::all().thread_swap_mask(SigmaskHow::SIG_SETMASK).ok();
    // SAFETY: `args` is a valid `clone_args` of the size passed, read by the kernel
    // during the call only; `pidfd` points to an i32 the kernel writes during it. Without CLONE_VM the child gets a copy of this process
    // (fork semantics), so everything it reads stays valid in it.
    let pid = unsafe { libc::syscall(libc::SYS_clone3, &raw const args, size_of::<CloneArgs>()) };
    if pid == 0 {
        // SAFETY: in the child of a fork-like clone, with every signal blocked;
        // `child` makes only async-signal-safe calls and never returns.
        unsafe { child(job.exec, job.argv, job.envp, job.report) }
    }
    if let Some(before) = before {
        let _ = before.thread_set_mask();
    }
    pid
}

fn read_full(fd: &OwnedFd, buf: &mut [u8; 4]) -> usize {
    loop {
        match nix::unistd::read(fd, buf) {
            Err(Errno::EINTR) => continue,
            Ok(n) => return n,
            Err(_) => return 0,
        }
    }
}

/// The child's side: what `posix_spawn` with `SETSID`, `SETSIGDEF` (all signals) and
/// an empty `SETSIGMASK` does, then the exec. Entered with every signal blocked (see
/// `clone_child`).
unsafe fn child(exec: &Exec, argv: &[*const c_char], envp: &[*const c_char], report: i32) -> ! {
    // SAFETY: raw system calls only, on pointers to memory prepared by the parent
    // before the clone (valid in this copy of it); no allocation, no lock.
    unsafe {
        let fail = |report: i32| -> ! {
            let errno = (*libc::__errno_location()).to_ne_bytes();
            libc::write(report, errno.as_ptr().cast(), errno.len());
            libc::_exit(127)
        };
        if libc::setsid() < 0 {
            fail(report);
        }
        // Handlers first, while every signal is still blocked: one of xtask's handlers
        // must never run here, in a copy of xtask that is about to exec.
        for sig in 1..=64 {
            libc::signal(sig, libc::SIG_DFL);
        }
        let mut empty: libc::sigset_t = std::mem::zeroed();
        libc::sigemptyset(&raw mut empty);
        libc::sigprocmask(libc::SIG_SETMASK, &raw const empty, std::ptr::null_mut());
        let null = libc::open(c"/dev/null".as_ptr(), libc::O_RDONLY);
        if null < 0 {
            fail(report);
        }
        if null != 0 {
            libc::dup2(null, 0);
            libc::close(null);
        }
        if libc::dup2(exec.log, 1) < 0 || libc::dup2(exec.log, 2) < 0 || libc::chdir(exec.cwd.as_ptr()) < 0 {
            fail(report);
        }
        libc::execve(exec.program.as_ptr(), argv.as_ptr(), envp.as_ptr());
        fail(report)
    }
}
