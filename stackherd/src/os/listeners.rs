//! The listening TCP sockets of this network namespace, asked of the kernel through
//! sock_diag netlink (what `ss` uses). Asked for listeners only, the kernel walks its
//! listening hash alone: microseconds, where `/proc/net/tcp` walks every connection,
//! TIME_WAIT included, and costs milliseconds on a busy machine.
//!
//! The request and the two answer fields read are a few fixed-layout structs of
//! `linux/inet_diag.h`, written out here: the netlink-packet crates that model every
//! message cost a cold build of xtask about 13 s of CPU (through zerocopy's derive and a
//! second syn) for these 72 bytes.

use std::os::fd::{AsRawFd, OwnedFd};
use std::time::Duration;

use nix::sys::socket::{
    AddressFamily, MsgFlags, NetlinkAddr, SockFlag, SockProtocol, SockType, bind, connect, recv, send, setsockopt,
    socket, sockopt,
};

/// The kernel answers a dump at once; this only bounds a kernel that never does.
const ANSWER_TIMEOUT: Duration = Duration::from_secs(1);

/// A listening TCP socket: its local port and its inode (what `/proc/PID/fd` links to).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Listener {
    pub port: u16,
    pub inode: u64,
}

/// Every listening TCP socket, IPv4 and IPv6; `None` when the kernel cannot be asked
/// (no sock_diag support, a seccomp filter), for the caller to read `/proc` instead.
pub fn listeners() -> Option<Vec<Listener>> {
    let socket = diag_socket()?;
    let mut found = Vec::new();
    for family in [nix::libc::AF_INET, nix::libc::AF_INET6] {
        found.extend(dump(&socket, family as u8)?);
    }
    Some(found)
}

// From linux/netlink.h, linux/sock_diag.h and linux/inet_diag.h.
const SOCK_DIAG_BY_FAMILY: u16 = 20;
const NLMSG_ERROR: u16 = 2;
const NLMSG_DONE: u16 = 3;
const NLMSG_OVERRUN: u16 = 4;
const NLM_F_REQUEST: u16 = 0x1;
const NLM_F_DUMP: u16 = 0x300;
const TCP_LISTEN: u32 = 10;
const NLMSG_HEADER_LEN: usize = 16;
/// `struct inet_diag_req_v2`: family, protocol, extensions, pad, states, then a
/// 48-byte `inet_diag_sockid` left zero (no filter).
const REQUEST_LEN: usize = 56;
/// In `struct inet_diag_msg`: the local port (network order) at 4, the inode at 68.
const SOURCE_PORT_AT: usize = 4;
const INODE_AT: usize = 68;

fn diag_socket() -> Option<OwnedFd> {
    let socket = socket(
        AddressFamily::Netlink,
        SockType::Raw,
        SockFlag::SOCK_CLOEXEC,
        SockProtocol::NetlinkSockDiag,
    )
    .ok()?;
    bind(socket.as_raw_fd(), &NetlinkAddr::new(0, 0)).ok()?;
    connect(socket.as_raw_fd(), &NetlinkAddr::new(0, 0)).ok()?;
    let timeout = nix::sys::time::TimeVal::new(ANSWER_TIMEOUT.as_secs() as _, 0);
    setsockopt(&socket, sockopt::ReceiveTimeout, &timeout).ok()?;
    Some(socket)
}

/// The dump request for the TCP listeners of one address family: a netlink header
/// (length, type, flags, sequence, port id), then `inet_diag_req_v2`.
fn request(family: u8) -> Vec<u8> {
    let mut out = Vec::with_capacity(NLMSG_HEADER_LEN + REQUEST_LEN);
    out.extend(((NLMSG_HEADER_LEN + REQUEST_LEN) as u32).to_ne_bytes());
    out.extend(SOCK_DIAG_BY_FAMILY.to_ne_bytes());
    out.extend((NLM_F_REQUEST | NLM_F_DUMP).to_ne_bytes());
    out.extend([0u8; 8]);
    out.extend([family, nix::libc::IPPROTO_TCP as u8, 0, 0]);
    out.extend((1u32 << TCP_LISTEN).to_ne_bytes());
    out.extend([0u8; REQUEST_LEN - 8]);
    out
}

/// The listeners of one address family.
fn dump(socket: &OwnedFd, family: u8) -> Option<Vec<Listener>> {
    send(socket.as_raw_fd(), &request(family), MsgFlags::empty()).ok()?;
    let mut found = Vec::new();
    let mut buf = vec![0u8; 64 * 1024];
    loop {
        let size = recv(socket.as_raw_fd(), &mut buf, MsgFlags::empty()).ok()?;
        let mut rest = buf.get(..size)?;
        while !rest.is_empty() {
            let (kind, payload, next) = message(rest)?;
            match kind {
                SOCK_DIAG_BY_FAMILY => found.push(listener(payload)?),
                NLMSG_DONE => return Some(found),
                NLMSG_ERROR | NLMSG_OVERRUN => return None,
                _ => {}
            }
            rest = next;
        }
    }
}

/// One netlink message at the front of `bytes`: its type, its payload and what follows
/// it (messages are aligned to 4 bytes). `None` for a message that does not fit.
fn message(bytes: &[u8]) -> Option<(u16, &[u8], &[u8])> {
    let length = u32::from_ne_bytes(bytes.get(..4)?.try_into().ok()?) as usize;
    let kind = u16::from_ne_bytes(bytes.get(4..6)?.try_into().ok()?);
    if length < NLMSG_HEADER_LEN {
        return None;
    }
    let payload = bytes.get(NLMSG_HEADER_LEN..length)?;
    let next = bytes.get(length.checked_next_multiple_of(4)?.min(bytes.len())..)?;
    Some((kind, payload, next))
}

fn listener(payload: &[u8]) -> Option<Listener> {
    let port = u16::from_be_bytes(payload.get(SOURCE_PORT_AT..SOURCE_PORT_AT + 2)?.try_into().ok()?);
    let inode = u32::from_ne_bytes(payload.get(INODE_AT..INODE_AT + 4)?.try_into().ok()?);
    Some(Listener {
        port,
        inode: u64::from(inode),
    })
}

#[cfg(test)]
mod tests {
    use std::os::fd::AsRawFd;

    use super::*;

    #[test]
    fn a_listening_socket_is_seen_with_its_port_and_inode() {
        let v4 = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        let v6 = std::net::TcpListener::bind("[::1]:0").unwrap();
        let found = listeners().expect("sock_diag answers");
        for listener in [v4, v6] {
            let port = listener.local_addr().unwrap().port();
            let link = std::fs::read_link(format!("/proc/self/fd/{}", listener.as_raw_fd())).unwrap();
            let ours = found.iter().find(|l| l.port == port).expect("our listener is listed");
            assert_eq!(link.to_string_lossy(), format!("socket:[{}]", ours.inode));
        }
    }

    #[test]
    fn a_truncated_message_is_refused_not_read_past() {
        let mut bytes = request(nix::libc::AF_INET as u8);
        assert_eq!(bytes.len(), NLMSG_HEADER_LEN + REQUEST_LEN);
        assert!(message(&bytes).is_some());
        bytes.truncate(40);
        assert_eq!(message(&bytes), None);
        assert_eq!(message(&[8, 0, 0, 0, 3, 0]), None);
        assert_eq!(listener(&[0; 70]), None);
    }
}
