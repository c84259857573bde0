//! Talks to the running demo stack; ignored by a plain `cargo test`, run it with the
//! stack up: `cargo xtask run -- cargo test -p demo --test stack -- --ignored`.

use std::io::{Read, Write};
use std::net::TcpStream;

/// The api's address: `DEMO_API_PORT` (which `cargo xtask run` exports from demo.env).
fn api() -> String {
    format!(
        "127.0.0.1:{}",
        std::env::var("DEMO_API_PORT").unwrap_or_else(|_| "47402".into())
    )
}

fn get(path: &str) -> (String, String) {
    let mut stream = TcpStream::connect(api()).expect("the demo api is up (start it with `cargo xtask start-bg`)");
    let request = format!("GET {path} HTTP/1.1\r\nHost: demo\r\nConnection: close\r\n\r\n");
    stream.write_all(request.as_bytes()).expect("send");
    let mut response = String::new();
    stream.read_to_string(&mut response).expect("read");
    let (head, body) = response.split_once("\r\n\r\n").expect("an HTTP response");
    (head.lines().next().unwrap_or("").to_string(), body.to_string())
}

#[test]
#[ignore = "needs the demo stack: cargo xtask run -- cargo test -p demo --test stack -- --ignored"]
fn the_api_is_healthy_and_counts_hits_in_the_store() {
    assert_eq!(get("/health").0, "HTTP/1.1 200 OK");
    let first: u64 = get("/hits").1.trim().parse().expect("a count");
    let second: u64 = get("/hits").1.trim().parse().expect("a count");
    assert!(second > first, "hits did not grow: {first} then {second}");
}
