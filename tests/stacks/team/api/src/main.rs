//! The team stack's API: a small HTTP server on 127.0.0.1:$PORT (xtask chooses the port).
//! `/` answers a greeting, `/health` answers 200 once redis (at $REDIS_ADDR) answers
//! PING, as a team's API checks the services it needs. Std only: its build works
//! offline and takes a second.

use std::io::{BufRead, BufReader, Read, Write};
use std::net::{SocketAddr, TcpListener, TcpStream};
use std::time::Duration;

/// What `/` answers; the watch test edits this line and waits for the rebuilt API.
const GREETING: &str = "hello from the team api";

fn main() {
    let port: u16 = match std::env::var("PORT").map(|p| p.parse()) {
        Ok(Ok(port)) => port,
        _ => {
            eprintln!("api: PORT must name the port to listen on");
            std::process::exit(2);
        }
    };
    let redis = std::env::var("REDIS_ADDR").unwrap_or_else(|_| "127.0.0.1:6379".into());
    let listener = match TcpListener::bind(("127.0.0.1", port)) {
        Ok(listener) => listener,
        Err(err) => {
            eprintln!("api: cannot listen on 127.0.0.1:{port}: {err}");
            std::process::exit(1);
        }
    };
    println!("api listening on http://127.0.0.1:{port}");
    for stream in listener.incoming() {
        // One request at a time is plenty for a development stack; a client that
        // stalls is cut off by the read timeout.
        if let Err(err) = stream.and_then(|s| serve(s, &redis)) {
            eprintln!("api: {err}");
        }
    }
}

/// Answers one request, then closes the connection.
fn serve(mut stream: TcpStream, redis: &str) -> std::io::Result<()> {
    stream.set_read_timeout(Some(Duration::from_secs(5)))?;
    let mut reader = BufReader::new(stream.try_clone()?);
    let mut request = String::new();
    reader.read_line(&mut request)?;
    // The headers are read up to the blank line that ends them, and ignored.
    let mut header = String::new();
    while reader.read_line(&mut header)? > 2 {
        header.clear();
    }
    let path = request.split_whitespace().nth(1).unwrap_or("/");
    let (status, body) = match path {
        "/" => ("200 OK", format!("{GREETING}\n")),
        "/health" => match ping(redis) {
            Ok(()) => ("200 OK", "ok\n".to_string()),
            Err(err) => ("503 Service Unavailable", format!("redis at {redis}: {err}\n")),
        },
        _ => ("404 Not Found", "not found\n".to_string()),
    };
    write!(
        stream,
        "HTTP/1.1 {status}\r\nContent-Type: text/plain\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{body}",
        body.len()
    )
}

/// Redis's PING, in its inline protocol: `+PONG` is the one good answer.
fn ping(redis: &str) -> std::io::Result<()> {
    let address: SocketAddr = redis
        .parse()
        .map_err(|_| std::io::Error::other("REDIS_ADDR is not an address"))?;
    let mut stream = TcpStream::connect_timeout(&address, Duration::from_secs(1))?;
    stream.set_read_timeout(Some(Duration::from_secs(1)))?;
    stream.write_all(b"PING\r\n")?;
    let mut answer = [0; 7];
    stream.read_exact(&mut answer)?;
    if &answer == b"+PONG\r\n" {
        Ok(())
    } else {
        Err(std::io::Error::other(format!(
            "answered {:?}",
            String::from_utf8_lossy(&answer)
        )))
    }
}
