//! Who listens on a TCP port: a bind that proves a port free, and the socket tables and
//! file descriptors that name a port's holders.

use std::collections::BTreeSet;
use std::path::Path;

use procfs::process::FDTarget;

use super::cookie::{COOKIE_PROJECT, COOKIE_SERVICE};
use super::listeners::{self, Listener};
use super::process::command_line;

/// A process that holds a listening TCP socket.
#[derive(Debug, Clone)]
pub struct PortHolder {
    pub pid: i32,
    pub command: String,
    /// The service named by its cookie, when it carries this project's cookie.
    pub service: Option<String>,
}

/// Every listening TCP socket, IPv4 and IPv6: from the kernel's sock_diag, or from the
/// socket tables in `/proc` where that cannot be asked.
fn all_listeners() -> Vec<Listener> {
    if let Some(found) = listeners::listeners() {
        return found;
    }
    let v4 = procfs::net::tcp().unwrap_or_default();
    let v6 = procfs::net::tcp6().unwrap_or_default();
    v4.into_iter()
        .chain(v6)
        .filter(|entry| entry.state == procfs::net::TcpState::Listen)
        .map(|entry| Listener {
            port: entry.local_address.port(),
            inode: entry.inode,
        })
        .collect()
}

/// The socket inodes listening on TCP `port`, on any address, IPv4 or IPv6.
pub fn listening_inodes(port: u16) -> Vec<u64> {
    all_listeners()
        .into_iter()
        .filter(|l| l.port == port)
        .map(|l| l.inode)
        .collect()
}

/// Every TCP port some socket listens on, IPv4 or IPv6, from one read of the sockets
/// for all the ports a command checks.
fn listening_ports() -> BTreeSet<u16> {
    all_listeners().into_iter().map(|l| l.port).collect()
}

/// The ports among `ports` that some socket listens on, on any address, IPv4 or IPv6.
/// A port to whose IPv4 and IPv6 wildcard addresses a bind (never a listen) succeeds
/// has no listener; only the others are looked up in the socket tables. Reading those
/// tables costs milliseconds on a machine with much memory (the kernel walks its whole
/// connection hash), a bind microseconds; sock_diag, where it answers, is as cheap.
pub fn busy_ports(ports: impl IntoIterator<Item = u16>) -> BTreeSet<u16> {
    let doubtful: Vec<u16> = ports.into_iter().filter(|p| !bind_proves_free(*p)).collect();
    if doubtful.is_empty() {
        return BTreeSet::new();
    }
    let listening = listening_ports();
    doubtful.into_iter().filter(|p| listening.contains(p)).collect()
}

/// True when binds to `port` on the IPv4 and the IPv6 wildcard address both succeed,
/// with `SO_REUSEADDR` as a listening service sets it: then nothing listens on it. A
/// failed bind (in use, privileged, no IPv6) proves nothing either way.
fn bind_proves_free(port: u16) -> bool {
    use nix::sys::socket::{AddressFamily, SockFlag, SockType, SockaddrIn, SockaddrIn6, SockaddrLike};
    use nix::sys::socket::{bind, setsockopt, socket, sockopt};
    use std::net::{Ipv4Addr, Ipv6Addr, SocketAddrV4, SocketAddrV6};
    use std::os::fd::AsRawFd;

    let v4 = SockaddrIn::from(SocketAddrV4::new(Ipv4Addr::UNSPECIFIED, port));
    let v6 = SockaddrIn6::from(SocketAddrV6::new(Ipv6Addr::UNSPECIFIED, port, 0, 0));
    let attempts: [(AddressFamily, &dyn SockaddrLike); 2] = [(AddressFamily::Inet, &v4), (AddressFamily::Inet6, &v6)];
    attempts.into_iter().all(|(family, address)| {
        socket(family, SockType::Stream, SockFlag::SOCK_CLOEXEC, None)
            .is_ok_and(|fd| setsockopt(&fd, sockopt::ReuseAddr, &true).is_ok() && bind(fd.as_raw_fd(), address).is_ok())
    })
}

/// Who answers on a TCP port, as far as this process can see.
#[derive(Debug, Clone)]
pub enum Answerer {
    /// One of the given processes holds this listening socket (its inode).
    Owned(u64),
    /// Only other processes do; the first of them.
    Stranger(PortHolder),
    /// No listener this process can attribute: none in this network namespace (a port
    /// that Docker or a NAT rule forwards), or its holders' descriptors are hidden.
    Unknown,
}

/// Whether one of `owned` holds one of the listening sockets `inodes` (from
/// `listening_inodes`), or whom else they name. Only the owned processes' descriptors
/// are read, so the usual answer is cheap; only a stranger costs a scan of `/proc`.
pub fn answerer(inodes: &[u64], owned: &[i32], project_root: &Path) -> Answerer {
    if inodes.is_empty() {
        return Answerer::Unknown;
    }
    let held = |pid: &i32| {
        procfs::process::Process::new(*pid)
            .ok()
            .and_then(|p| held_socket(&p, inodes))
    };
    if let Some(inode) = owned.iter().find_map(held) {
        return Answerer::Owned(inode);
    }
    match holders_of(inodes, project_root)
        .into_iter()
        .find(|h| !owned.contains(&h.pid))
    {
        Some(holder) => Answerer::Stranger(holder),
        None => Answerer::Unknown,
    }
}

/// The first of the sockets `inodes` that `process` has open.
fn held_socket(process: &procfs::process::Process, inodes: &[u64]) -> Option<u64> {
    process.fd().ok()?.flatten().find_map(|fd| match fd.target {
        FDTarget::Socket(inode) if inodes.contains(&inode) => Some(inode),
        _ => None,
    })
}

/// The processes that hold a listening socket on `port`, as far as /proc lets us see
/// (another user's file descriptors are hidden from a non-root caller).
pub fn port_holders(port: u16, project_root: &Path) -> Vec<PortHolder> {
    let inodes = listening_inodes(port);
    if inodes.is_empty() {
        return Vec::new();
    }
    holders_of(&inodes, project_root)
}

/// The processes that hold one of the sockets `inodes`.
fn holders_of(inodes: &[u64], project_root: &Path) -> Vec<PortHolder> {
    let Ok(all) = procfs::process::all_processes() else {
        return Vec::new();
    };
    let mut holders = Vec::new();
    for process in all.flatten() {
        if held_socket(&process, inodes).is_some() {
            let service = process.environ().ok().and_then(|env| {
                let ours = env.get(std::ffi::OsStr::new(COOKIE_PROJECT)).map(|v| v.as_os_str())
                    == Some(project_root.as_os_str());
                ours.then(|| {
                    env.get(std::ffi::OsStr::new(COOKIE_SERVICE))
                        .and_then(|s| super::scan::service_name(s.as_encoded_bytes()))
                })
                .flatten()
            });
            holders.push(PortHolder {
                pid: process.pid,
                command: command_line(process.pid),
                service,
            });
        }
    }
    holders
}
