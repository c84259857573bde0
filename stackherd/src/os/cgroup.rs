//! cgroup v2 containment, the strongest ownership layer: each service runs in a cgroup
//! of its own, `<base>/xtask-<project>-<hash>/<service>`, entered before the program's
//! first instruction (see `spawn`). Membership is ownership: no fork, setsid, cleared
//! environment or rewritten process title leaves a cgroup.
//!
//! The base is the cgroup xtask itself runs in, on the cgroup2 hierarchy found in
//! `/proc/self/mountinfo` (`/sys/fs/cgroup`, or `/sys/fs/cgroup/unified` on hybrid
//! hosts), when this user may create cgroups there: as root, in a CI container, in a
//! systemd-delegated subtree. No controller is enabled: membership, `cgroup.kill` and
//! the member list need none, and enabling one would forbid processes in the base.

use std::fs;
use std::io;
use std::os::fd::OwnedFd;
use std::path::{Path, PathBuf};
use std::sync::OnceLock;

use nix::errno::Errno;
use nix::fcntl::{OFlag, open};
use nix::sys::stat::Mode;
use nix::unistd::{AccessFlags, access};

use super::process::self_and_ancestors;
use crate::config::{fnv1a, valid_service_name};

/// Set to `0`, turns this layer off: services run without a cgroup of their own, and
/// ownership rests on the recorded process tree and the cookie.
pub const SWITCH: &str = "XTASK_CGROUP";

/// One service's cgroup.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Cgroup {
    path: PathBuf,
}

/// The cgroup under which this process may create the project's cgroups, or `None`
/// when the layer is off or unavailable.
pub fn base() -> Option<&'static Path> {
    static BASE: OnceLock<Option<PathBuf>> = OnceLock::new();
    BASE.get_or_init(find_base).as_deref()
}

/// The containment layer in use, as `check` and `status --json` name it.
pub fn containment() -> &'static str {
    if base().is_some() { "cgroup" } else { "tree" }
}

fn find_base() -> Option<PathBuf> {
    if std::env::var_os(SWITCH).is_some_and(|v| v == "0") {
        return None;
    }
    let mount = mount_point()?;
    let own = fs::read_to_string("/proc/self/cgroup").ok()?;
    let relative = own.lines().find_map(|l| l.strip_prefix("0::"))?;
    let base = mount.join(relative.trim_start_matches('/'));
    let writable = |p: &Path| access(p, AccessFlags::W_OK).is_ok();
    (writable(&base) && writable(&base.join("cgroup.procs"))).then_some(base)
}

/// Where the cgroup2 hierarchy is mounted, read once: every stop asks for each service.
fn mount_point() -> Option<&'static Path> {
    static MOUNT: OnceLock<Option<PathBuf>> = OnceLock::new();
    MOUNT.get_or_init(read_mount_point).as_deref()
}

fn read_mount_point() -> Option<PathBuf> {
    let info = fs::read_to_string("/proc/self/mountinfo").ok()?;
    info.lines().find_map(|line| {
        let (mount, fs) = line.split_once(" - ")?;
        if fs.split_whitespace().next()? != "cgroup2" {
            return None;
        }
        mount.split_whitespace().nth(4).map(|p| PathBuf::from(unescape(p)))
    })
}

/// mountinfo escapes space, tab, newline and backslash as octal (`\040`).
fn unescape(field: &str) -> String {
    let mut out = Vec::with_capacity(field.len());
    let mut rest = field.as_bytes();
    while let Some((&byte, after)) = rest.split_first() {
        let octal = after
            .get(..3)
            .and_then(|d| u8::from_str_radix(std::str::from_utf8(d).ok()?, 8).ok());
        match (byte, octal) {
            (b'\\', Some(escaped)) => {
                out.push(escaped);
                rest = after.get(3..).unwrap_or_default();
            }
            (byte, _) => {
                out.push(byte);
                rest = after;
            }
        }
    }
    String::from_utf8_lossy(&out).into_owned()
}

/// The name of the project's cgroup: its directory's name and a hash of its root, so
/// that two checkouts of one repository differ and a reader of `systemd-cgls` sees
/// whose it is.
pub fn project_name(root: &Path) -> String {
    let dir: String = root
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_default()
        .chars()
        .take(40)
        .map(|c| {
            if c.is_ascii_alphanumeric() || c == '-' || c == '_' {
                c
            } else {
                '-'
            }
        })
        .collect();
    format!("xtask-{dir}-{:08x}", fnv1a(root.as_os_str().as_encoded_bytes()) as u32)
}

/// The project's cgroup under this process's base.
pub fn project(root: &Path) -> Option<PathBuf> {
    base().map(|base| base.join(project_name(root)))
}

impl Cgroup {
    /// The cgroup of `service` under this process's base, when the layer is on.
    pub fn for_service(root: &Path, service: &str) -> Option<Cgroup> {
        let path = project(root)?.join(service);
        valid_service_name(service).then_some(Cgroup { path })
    }

    /// A cgroup a record names, when it is the cgroup of `service` in this project:
    /// a record is a file anyone with access to the state directory could edit.
    pub fn recorded(path: &Path, root: &Path, service: &str) -> Option<Cgroup> {
        let named = path.file_name().is_some_and(|n| n == service)
            && path
                .parent()
                .and_then(Path::file_name)
                .is_some_and(|n| *n == *project_name(root))
            && valid_service_name(service);
        let on_hierarchy = mount_point().is_some_and(|m| path.starts_with(m));
        (named && on_hierarchy && !path.components().any(|c| c == std::path::Component::ParentDir)).then(|| Cgroup {
            path: path.to_path_buf(),
        })
    }

    /// The service cgroups found under a project cgroup (`cleanup` of what records lost).
    pub fn under(project: &Path) -> Vec<(String, Cgroup)> {
        let Ok(dir) = fs::read_dir(project) else {
            return Vec::new();
        };
        dir.flatten()
            .filter(|e| e.file_type().is_ok_and(|t| t.is_dir()))
            .filter_map(|e| e.file_name().to_str().map(str::to_string))
            .filter(|name| valid_service_name(name))
            .map(|name| {
                let path = project.join(&name);
                (name, Cgroup { path })
            })
            .collect()
    }

    pub fn path(&self) -> &Path {
        &self.path
    }

    /// Creates the cgroup (and the project's) if needed, and opens it for
    /// `CLONE_INTO_CGROUP`.
    pub fn prepare(&self) -> io::Result<OwnedFd> {
        fs::create_dir_all(&self.path)?;
        Ok(open(
            &self.path,
            OFlag::O_RDONLY | OFlag::O_DIRECTORY | OFlag::O_CLOEXEC,
            Mode::empty(),
        )?)
    }

    /// The PIDs in the cgroup now; empty when it does not exist.
    pub fn members(&self) -> Vec<i32> {
        fs::read_to_string(self.path.join("cgroup.procs"))
            .map(|text| text.lines().filter_map(|l| l.trim().parse().ok()).collect())
            .unwrap_or_default()
    }

    /// SIGKILL to every process in the cgroup, those forked a moment ago included
    /// (`cgroup.kill`, Linux 5.14). False when the kernel has no `cgroup.kill`, or when
    /// this process or an ancestor is a member (a service's script that runs `xtask
    /// stop`): a command never kills itself or its callers.
    pub fn kill_all(&self) -> bool {
        if self.members().iter().any(|pid| self_and_ancestors().contains(pid)) {
            return false;
        }
        fs::write(self.path.join("cgroup.kill"), "1").is_ok()
    }

    /// Thaws the cgroup when it is frozen (`cgroup.freeze`, Linux 5.2). A frozen
    /// process runs no signal handler until it is thawed (only SIGKILL ends it), so a
    /// frozen service could not shut down through its own. Only a frozen cgroup is
    /// written to: the stop of a running service writes nothing here. True when it was
    /// frozen and is thawed now. A freeze of an ancestor (a systemd unit frozen around
    /// xtask) is not ours to undo, and still holds the service.
    pub fn thaw(&self) -> bool {
        let freeze = self.path.join("cgroup.freeze");
        let frozen = fs::read_to_string(&freeze).is_ok_and(|state| state.trim() == "1");
        frozen && fs::write(&freeze, "0").is_ok()
    }

    /// Removes the cgroup once it is empty, then the project's cgroup when it was the
    /// last one. A cgroup still populated (or gone already) is left as it is.
    pub fn remove(&self) {
        match fs::remove_dir(&self.path) {
            Ok(()) => {}
            Err(err) if err.raw_os_error() == Some(Errno::ENOENT as i32) => {}
            Err(_) => return,
        }
        if let Some(project) = self.path.parent() {
            let _ = fs::remove_dir(project);
        }
    }
}
