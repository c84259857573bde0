//! Spawning a service straight into its cgroup: `clone3(CLONE_INTO_CGROUP)`, then the
//! same set-up `posix_spawn` does (new session, default signals, stdio) and `execve`.
//!
//! glibc's `posix_spawn` cannot place a child in a cgroup before 2.39, and moving a
//! child in after it started leaves a moment in which it can fork out. On x86_64 the
//! clone is what `posix_spawn` itself does, `CLONE_VM | CLONE_VFORK` on a stack of the
//! child's own: no copy of xtask's page tables, and no lock that makes the spawns of
//! several threads wait for each other (a fork-like clone made starting 50 services
//! 18 ms slower). Elsewhere it has fork semantics. Either way the child runs only
//! async-signal-safe system calls on data prepared before the clone, then execs or
//! reports its errno through a close-on-exec pipe and exits.

use std::ffi::{CStr, CString, c_char};
use std::os::fd::{AsRawFd, OwnedFd};

use nix::errno::Errno;
use nix::libc;

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
/// Returns the child's PID once it has exec'd.
pub fn spawn(exec: &Exec, cgroup: &OwnedFd) -> Result<i32, Failure> {
    let argv: Vec<*const c_char> = exec.args.iter().map(|a| a.as_ptr()).chain([std::ptr::null()]).collect();
    let envp: Vec<*const c_char> = exec.env.iter().map(|e| e.as_ptr()).chain([std::ptr::null()]).collect();
    let (report, reported) = nix::unistd::pipe2(nix::fcntl::OFlag::O_CLOEXEC).map_err(|_| Failure::Clone)?;
    let job = Job {
        exec,
        argv: &argv,
        envp: &envp,
        report: reported.as_raw_fd(),
    };
    let pid = clone_child(&job, cgroup);
    drop(reported);
    if pid < 0 {
        return Err(Failure::Clone);
    }
    let pid = pid as i32;
    let mut errno = [0u8; 4];
    match read_full(&report, &mut errno) {
        // The pipe closed on exec: the program runs.
        0 => Ok(pid),
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

/// The child's stack: the set-up before `execve` needs little.
#[cfg(target_arch = "x86_64")]
const CHILD_STACK: usize = 64 * 1024;

/// Clones a child that runs `job` in `cgroup`, sharing this process's memory on a
/// stack of its own, while this thread waits for it to exec or exit (`CLONE_VFORK`).
/// Signals stay blocked across the clone, so no handler of xtask's ever runs in the
/// child; it resets them all before unblocking. Returns the PID, or -1.
#[cfg(target_arch = "x86_64")]
fn clone_child(job: &Job, cgroup: &OwnedFd) -> i64 {
    const CLONE_VM: u64 = libc::CLONE_VM as u64;
    const CLONE_VFORK: u64 = libc::CLONE_VFORK as u64;
    // u128: 16-byte aligned, as the stack pointer must be at a call.
    let mut stack = vec![0u128; CHILD_STACK / 16];
    let args = CloneArgs {
        flags: CLONE_INTO_CGROUP | CLONE_VM | CLONE_VFORK,
        exit_signal: libc::SIGCHLD as u64,
        stack: stack.as_mut_ptr() as u64,
        stack_size: CHILD_STACK as u64,
        cgroup: cgroup.as_raw_fd() as u64,
        ..CloneArgs::default()
    };
    let entry: unsafe extern "C" fn(*const Job) -> ! = child_entry;
    let ret: i64;
    // SAFETY: all signals are blocked around the clone (restored below). The kernel
    // reads `args` during the call only. The child starts on `stack` (the kernel sets
    // its stack pointer to the top) and at once calls `entry(job)`, which never
    // returns; this thread is suspended until the child has exec'd or exited, so
    // `job`, `stack` and what they point to outlive every use the child makes of them.
    unsafe {
        let mut all: libc::sigset_t = std::mem::zeroed();
        let mut before: libc::sigset_t = std::mem::zeroed();
        libc::sigfillset(&raw mut all);
        libc::pthread_sigmask(libc::SIG_SETMASK, &raw const all, &raw mut before);
        std::arch::asm!(
            "syscall",
            "test rax, rax",
            "jnz 2f",
            "mov rdi, r12",
            "call r13",
            "ud2",
            "2:",
            inlateout("rax") libc::SYS_clone3 => ret,
            in("rdi") &raw const args,
            in("rsi") size_of::<CloneArgs>(),
            in("r12") std::ptr::from_ref(job),
            in("r13") entry,
            lateout("rcx") _,
            lateout("r11") _,
        );
        libc::pthread_sigmask(libc::SIG_SETMASK, &raw const before, std::ptr::null_mut());
    }
    drop(stack);
    ret
}

/// Elsewhere: a fork-like clone (the child gets a copy of this process).
#[cfg(not(target_arch = "x86_64"))]
fn clone_child(job: &Job, cgroup: &OwnedFd) -> i64 {
    let args = CloneArgs {
        flags: CLONE_INTO_CGROUP,
        exit_signal: libc::SIGCHLD as u64,
        cgroup: cgroup.as_raw_fd() as u64,
        ..CloneArgs::default()
    };
    // SAFETY: without CLONE_VM the child gets a copy of this process (fork semantics),
    // so `args` and everything the child reads stay valid in it; the kernel reads
    // `args` only during the call.
    let pid = unsafe { libc::syscall(libc::SYS_clone3, &raw const args, size_of::<CloneArgs>()) };
    if pid == 0 {
        // SAFETY: in the child of a fork-like clone.
        unsafe { child_entry(job) }
    }
    pid
}

/// The child's first function, on its own stack.
unsafe extern "C" fn child_entry(job: *const Job) -> ! {
    // SAFETY: `job` points to the parent's `Job`, alive while the parent waits.
    unsafe {
        let job = &*job;
        child(job.exec, job.argv, job.envp, job.report)
    }
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
/// an empty `SETSIGMASK` does, then the exec. Entered with every signal blocked on
/// x86_64 (see `clone_child`).
unsafe fn child(exec: &Exec, argv: &[*const c_char], envp: &[*const c_char], report: i32) -> ! {
    // SAFETY (whole body): raw system calls only, on pointers to memory prepared by the
    // parent before the clone; no allocation, no lock.
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
        // must never run here, in memory shared with xtask.
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
