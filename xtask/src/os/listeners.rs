//! The listening TCP sockets of this network namespace, asked of the kernel through
//! sock_diag netlink (what `ss` uses). Asked for listeners only, the kernel walks its
//! listening hash alone: microseconds, where `/proc/net/tcp` walks every connection,
//! TIME_WAIT included, and costs milliseconds on a busy machine.

use std::os::fd::AsFd;
use std::time::Duration;

use netlink_packet_core::{NLM_F_DUMP, NLM_F_REQUEST, NetlinkHeader, NetlinkMessage, NetlinkPayload};
use netlink_packet_sock_diag::SockDiagMessage;
use netlink_packet_sock_diag::constants::{AF_INET, AF_INET6, IPPROTO_TCP};
use netlink_packet_sock_diag::inet::{ExtensionFlags, InetRequest, SocketId, StateFlags};
use netlink_sys::protocols::NETLINK_SOCK_DIAG;
use netlink_sys::{Socket, SocketAddr};

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
    for family in [AF_INET, AF_INET6] {
        found.extend(dump(&socket, family)?);
    }
    Some(found)
}

fn diag_socket() -> Option<Socket> {
    let mut socket = Socket::new(NETLINK_SOCK_DIAG).ok()?;
    socket.bind_auto().ok()?;
    socket.connect(&SocketAddr::new(0, 0)).ok()?;
    let timeout = nix::sys::time::TimeVal::new(ANSWER_TIMEOUT.as_secs() as _, 0);
    nix::sys::socket::setsockopt(&socket.as_fd(), nix::sys::socket::sockopt::ReceiveTimeout, &timeout).ok()?;
    Some(socket)
}

/// The listeners of one address family.
fn dump(socket: &Socket, family: u8) -> Option<Vec<Listener>> {
    let mut header = NetlinkHeader::default();
    header.flags = NLM_F_REQUEST | NLM_F_DUMP;
    let socket_id = if family == AF_INET {
        SocketId::new_v4()
    } else {
        SocketId::new_v6()
    };
    let request = SockDiagMessage::InetRequest(InetRequest {
        family,
        protocol: IPPROTO_TCP,
        extensions: ExtensionFlags::empty(),
        states: StateFlags::LISTEN,
        socket_id,
    });
    let mut packet = NetlinkMessage::new(header, request.into());
    packet.finalize();
    let mut out = vec![0; packet.buffer_len()];
    packet.serialize(&mut out);
    socket.send(&out, 0).ok()?;

    let mut found = Vec::new();
    let mut buf = vec![0u8; 64 * 1024];
    loop {
        let size = socket.recv(&mut &mut buf[..], 0).ok()?;
        let mut offset = 0;
        while offset < size {
            let message = NetlinkMessage::<SockDiagMessage>::deserialize(buf.get(offset..size)?).ok()?;
            let length = message.header.length as usize;
            match message.payload {
                NetlinkPayload::InnerMessage(SockDiagMessage::InetResponse(response)) => found.push(Listener {
                    port: response.header.socket_id.source_port,
                    inode: u64::from(response.header.inode),
                }),
                NetlinkPayload::Done(_) => return Some(found),
                NetlinkPayload::Error(_) | NetlinkPayload::Overrun(_) => return None,
                _ => {}
            }
            if length == 0 {
                return None;
            }
            offset = offset.saturating_add(length);
        }
    }
}

#[cfg(test)]
mod tests {
    use std::os::fd::AsRawFd;

    use super::*;

    #[test]
    fn a_listening_socket_is_seen_with_its_port_and_inode() {
        let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        let port = listener.local_addr().unwrap().port();
        let link = std::fs::read_link(format!("/proc/self/fd/{}", listener.as_raw_fd())).unwrap();
        let found = listeners().expect("sock_diag answers");
        let ours = found.iter().find(|l| l.port == port).expect("our listener is listed");
        assert_eq!(link.to_string_lossy(), format!("socket:[{}]", ours.inode));
    }
}
