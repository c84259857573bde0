//! The network probes: a TCP connect, and an HTTP GET answered below 400.

use std::net::{SocketAddr, TcpStream};
use std::time::Duration;

use super::ProbeError;

pub(super) fn probe_port(port: u16, timeout: Duration) -> Result<(), ProbeError> {
    let addr = SocketAddr::from(([127, 0, 0, 1], port));
    match TcpStream::connect_timeout(&addr, timeout) {
        Ok(_) => Ok(()),
        // Many dev servers listen on ::1 only ("localhost" resolved to IPv6).
        Err(io) => TcpStream::connect_timeout(&SocketAddr::from(([0u16, 0, 0, 0, 0, 0, 0, 1], port)), timeout)
            .map(|_| ())
            .map_err(|_| ProbeError::Connect {
                addr: format!("127.0.0.1:{port}"),
                io,
            }),
    }
}

/// The buffers of a probe's connection: a health answer's status line and headers fit
/// in a few kilobytes. (ureq's defaults, 128 KB each, were allocated and zeroed for
/// every probe: most of an idle supervisor's time.)
const INPUT_BUFFER: usize = 16 * 1024;
const OUTPUT_BUFFER: usize = 4 * 1024;

pub(super) fn probe_http(url: &str, timeout: Duration) -> Result<(), ProbeError> {
    let builder = ureq::Agent::config_builder()
        .http_status_as_error(false)
        .input_buffer_size(INPUT_BUFFER)
        .output_buffer_size(OUTPUT_BUFFER);
    // A host given by its address needs no lookup, so each step is bounded instead of
    // the whole: with an overall bound ureq resolves on a thread of its own, one
    // thread started per probe. A name may take a lookup that hangs: bounded whole.
    let builder = if literal_host(url) {
        builder
            .timeout_connect(Some(timeout))
            .timeout_send_request(Some(timeout))
            .timeout_recv_response(Some(timeout))
            .timeout_recv_body(Some(timeout))
    } else {
        builder.timeout_global(Some(timeout))
    };
    let agent: ureq::Agent = builder.build().into();
    match agent.get(url).call() {
        Ok(response) if response.status().as_u16() < 400 => Ok(()),
        Ok(response) => Err(ProbeError::HttpStatus {
            url: url.to_string(),
            status: response.status().as_u16(),
        }),
        // The error may quote the server (a malformed `Location` header): its text.
        Err(err) => Err(ProbeError::Http {
            url: url.to_string(),
            why: crate::ui::text::plain(&err.to_string()),
        }),
    }
}

/// Whether the host of `url` is an IP address rather than a name.
fn literal_host(url: &str) -> bool {
    url.parse::<ureq::http::Uri>().ok().and_then(|uri| {
        let host = uri.host()?.trim_start_matches('[').trim_end_matches(']').to_string();
        Some(host.parse::<std::net::IpAddr>().is_ok())
    }) == Some(true)
}

/// The port of `url` when its host is this machine (a loopback address, `localhost`,
/// the wildcard address): only then can its listener be looked up.
pub(super) fn loopback_port(url: &str) -> Option<u16> {
    let uri: ureq::http::Uri = url.parse().ok()?;
    let host = uri.host()?.trim_start_matches('[').trim_end_matches(']');
    let local = host.eq_ignore_ascii_case("localhost")
        || host
            .parse::<std::net::IpAddr>()
            .is_ok_and(|ip| ip.is_loopback() || ip.is_unspecified());
    if !local {
        return None;
    }
    uri.port_u16().or(match uri.scheme_str() {
        Some("https") => Some(443),
        _ => Some(80),
    })
}

#[cfg(test)]
mod tests {
    use super::{literal_host, loopback_port};

    #[test]
    fn only_urls_of_this_machine_have_a_port_to_look_up() {
        assert_eq!(loopback_port("http://127.0.0.1:8080/health"), Some(8080));
        assert_eq!(loopback_port("http://localhost/"), Some(80));
        assert_eq!(loopback_port("https://[::1]/x"), Some(443));
        assert_eq!(loopback_port("http://0.0.0.0:3000"), Some(3000));
        assert_eq!(loopback_port("http://example.com:8080/"), None);
        assert_eq!(loopback_port("not a url"), None);
    }

    #[test]
    fn only_addresses_are_literal_hosts() {
        assert!(literal_host("http://127.0.0.1:8080/health"));
        assert!(literal_host("http://[::1]:3000/"));
        assert!(!literal_host("http://localhost:3000/"));
        assert!(!literal_host("http://example.com/"));
    }
}
