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

pub(super) fn probe_http(url: &str, timeout: Duration) -> Result<(), ProbeError> {
    let agent: ureq::Agent = ureq::Agent::config_builder()
        .timeout_global(Some(timeout))
        .http_status_as_error(false)
        .build()
        .into();
    match agent.get(url).call() {
        Ok(response) if response.status().as_u16() < 400 => Ok(()),
        Ok(response) => Err(ProbeError::HttpStatus {
            url: url.to_string(),
            status: response.status().as_u16(),
        }),
        Err(err) => Err(ProbeError::Http {
            url: url.to_string(),
            why: err.to_string(),
        }),
    }
}
