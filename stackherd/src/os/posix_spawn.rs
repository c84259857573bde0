//! `posix_spawn` over libc's own types: a new session, every signal at its default
//! action and none blocked, stdio, and a working directory (glibc's
//! `posix_spawn_file_actions_addchdir_np`, 2.29 and later), which nix's wrapper
//! lacks. Reaching into nix's wrapper for the pointer would rely on its private
//! layout; these wrappers own the libc objects and free them when dropped.

use std::ffi::{CStr, CString, c_char};
use std::mem::MaybeUninit;

use nix::errno::Errno;
use nix::libc;

/// What the child does before its exec: opens, duplications, a change of directory.
pub struct FileActions(libc::posix_spawn_file_actions_t);

impl FileActions {
    pub fn new() -> Result<FileActions, Errno> {
        let mut actions = MaybeUninit::<libc::posix_spawn_file_actions_t>::uninit();
        // SAFETY: `init` initialises the object it is given; it is used only if it succeeded.
        check(unsafe { libc::posix_spawn_file_actions_init(actions.as_mut_ptr()) })?;
        // SAFETY: initialised just above.
        Ok(FileActions(unsafe { actions.assume_init() }))
    }

    /// Opens `path` as descriptor `fd` in the child.
    pub fn open(&mut self, fd: i32, path: &CStr, flags: i32) -> Result<(), Errno> {
        // SAFETY: `self.0` is initialised; glibc copies `path`.
        check(unsafe { libc::posix_spawn_file_actions_addopen(&raw mut self.0, fd, path.as_ptr(), flags, 0) })
    }

    /// Makes `to` a copy of `from` in the child.
    pub fn dup2(&mut self, from: i32, to: i32) -> Result<(), Errno> {
        // SAFETY: `self.0` is initialised.
        check(unsafe { libc::posix_spawn_file_actions_adddup2(&raw mut self.0, from, to) })
    }

    /// Makes `dir` the child's working directory.
    pub fn chdir(&mut self, dir: &CStr) -> Result<(), Errno> {
        // SAFETY: `self.0` is initialised; glibc copies `dir`.
        check(unsafe { libc::posix_spawn_file_actions_addchdir_np(&raw mut self.0, dir.as_ptr()) })
    }
}

impl Drop for FileActions {
    fn drop(&mut self) {
        // SAFETY: initialised in `new`, destroyed once, here.
        unsafe { libc::posix_spawn_file_actions_destroy(&raw mut self.0) };
    }
}

/// A new session, every signal at its default action, none blocked: a service starts
/// as systemd starts one (without the reset, SIGPIPE would stay ignored, as Rust sets
/// it). glibc still hands over its two internal real-time signals (32, 33) ignored, as
/// it does for every `posix_spawn`, std's `Command` included.
pub struct SessionAttributes(libc::posix_spawnattr_t);

impl SessionAttributes {
    pub fn new() -> Result<SessionAttributes, Errno> {
        let mut attr = MaybeUninit::<libc::posix_spawnattr_t>::uninit();
        // SAFETY: `init` initialises the object it is given; it is used only if it succeeded.
        check(unsafe { libc::posix_spawnattr_init(attr.as_mut_ptr()) })?;
        // SAFETY: initialised just above.
        let mut attr = SessionAttributes(unsafe { attr.assume_init() });
        let flags = i32::from(libc::POSIX_SPAWN_SETSID) | libc::POSIX_SPAWN_SETSIGDEF | libc::POSIX_SPAWN_SETSIGMASK;
        let flags = libc::c_short::try_from(flags).map_err(|_| Errno::EINVAL)?;
        // SAFETY: the sets are initialised by sigfillset and sigemptyset before use, and
        // `attr.0` is initialised.
        unsafe {
            let mut all = MaybeUninit::<libc::sigset_t>::uninit();
            let mut none = MaybeUninit::<libc::sigset_t>::uninit();
            libc::sigfillset(all.as_mut_ptr());
            libc::sigemptyset(none.as_mut_ptr());
            check(libc::posix_spawnattr_setflags(&raw mut attr.0, flags))?;
            check(libc::posix_spawnattr_setsigdefault(&raw mut attr.0, all.as_ptr()))?;
            check(libc::posix_spawnattr_setsigmask(&raw mut attr.0, none.as_ptr()))?;
        }
        Ok(attr)
    }
}

impl Drop for SessionAttributes {
    fn drop(&mut self) {
        // SAFETY: initialised in `new`, destroyed once, here.
        unsafe { libc::posix_spawnattr_destroy(&raw mut self.0) };
    }
}

/// Spawns `program` with `args` and `env` (`KEY=value`); its PID.
pub fn spawn(
    program: &CStr,
    actions: &FileActions,
    attr: &SessionAttributes,
    args: &[CString],
    env: &[CString],
) -> Result<i32, Errno> {
    let argv: Vec<*mut c_char> = args
        .iter()
        .map(|a| a.as_ptr().cast_mut())
        .chain([std::ptr::null_mut()])
        .collect();
    let envp: Vec<*mut c_char> = env
        .iter()
        .map(|e| e.as_ptr().cast_mut())
        .chain([std::ptr::null_mut()])
        .collect();
    let mut pid: libc::pid_t = 0;
    // SAFETY: `argv` and `envp` are null-terminated arrays of pointers to C strings that
    // outlive the call (posix_spawn does not write through them); `actions` and `attr`
    // are initialised objects.
    check(unsafe {
        libc::posix_spawn(
            &raw mut pid,
            program.as_ptr(),
            &raw const actions.0,
            &raw const attr.0,
            argv.as_ptr(),
            envp.as_ptr(),
        )
    })?;
    Ok(pid)
}

/// A posix_spawn function's result: 0, or the error number itself.
fn check(result: i32) -> Result<(), Errno> {
    match result {
        0 => Ok(()),
        errno => Err(Errno::from_raw(errno)),
    }
}
