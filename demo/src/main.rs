//! The demo stack that services.toml runs: three tiny services in a dependency chain,
//! written with the standard library only so that a fresh machine needs nothing but
//! the Rust toolchain.
//!
//! - `demo store --port P`: a counter store speaking a line protocol (`INCR key`).
//! - `demo api --port P --store ADDR`: HTTP; `/health` is 200 while the store answers,
//!   `/hits` increments and returns a counter kept in the store.
//! - `demo worker --api ADDR --heartbeat FILE`: calls `/hits` twice a second and
//!   touches FILE after each success.
//! - `demo heartbeat-fresh FILE`: exits 0 when FILE was touched in the last 5 seconds
//!   (the worker's health check).

use std::collections::HashMap;
use std::io::{BufRead, BufReader, Read, Write};
use std::net::{TcpListener, TcpStream};
use std::process::ExitCode;
use std::sync::{Arc, Mutex};
use std::thread;
use std::time::{Duration, SystemTime};

fn main() -> ExitCode {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let flag = |name: &str| {
        args.iter()
            .position(|a| a == name)
            .and_then(|i| args.get(i + 1))
            .cloned()
    };
    let result = match args.first().map(String::as_str) {
        Some("store") => flag("--port")
            .ok_or("--port is required".to_string())
            .and_then(|p| store(&p)),
        Some("api") => match (flag("--port"), flag("--store")) {
            (Some(port), Some(store)) => api(&port, &store),
            _ => Err("--port and --store are required".into()),
        },
        Some("worker") => match (flag("--api"), flag("--heartbeat")) {
            (Some(api), Some(file)) => worker(&api, &file),
            _ => Err("--api and --heartbeat are required".into()),
        },
        Some("heartbeat-fresh") => args
            .get(1)
            .ok_or("a FILE is required".to_string())
            .and_then(|f| heartbeat_fresh(f)),
        _ => Err("usage: demo store|api|worker|heartbeat-fresh ...".into()),
    };
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(err) => {
            eprintln!("demo: {err}");
            ExitCode::FAILURE
        }
    }
}

fn listen(port: &str) -> Result<TcpListener, String> {
    TcpListener::bind(format!("127.0.0.1:{port}")).map_err(|e| format!("cannot listen on port {port}: {e}"))
}

fn store(port: &str) -> Result<(), String> {
    let listener = listen(port)?;
    println!("store listening on 127.0.0.1:{port}");
    let counters: Arc<Mutex<HashMap<String, u64>>> = Arc::default();
    for stream in listener.incoming().flatten() {
        let counters = Arc::clone(&counters);
        thread::spawn(move || {
            let mut writer = match stream.try_clone() {
                Ok(w) => w,
                Err(_) => return,
            };
            for line in BufReader::new(stream).lines().map_while(Result::ok) {
                let reply = match line.split_once(' ') {
                    Some(("INCR", key)) => {
                        let mut map = counters.lock().unwrap_or_else(|e| e.into_inner());
                        let n = map.entry(key.to_string()).or_insert(0);
                        *n += 1;
                        n.to_string()
                    }
                    _ => "ERR unknown command".to_string(),
                };
                if writeln!(writer, "{reply}").is_err() {
                    return;
                }
            }
        });
    }
    Ok(())
}

fn store_incr(store: &str, key: &str) -> Result<String, String> {
    let mut stream = TcpStream::connect(store).map_err(|e| format!("store {store}: {e}"))?;
    stream
        .set_read_timeout(Some(Duration::from_secs(1)))
        .map_err(|e| e.to_string())?;
    writeln!(stream, "INCR {key}").map_err(|e| e.to_string())?;
    let mut line = String::new();
    BufReader::new(stream).read_line(&mut line).map_err(|e| e.to_string())?;
    Ok(line.trim().to_string())
}

fn api(port: &str, store: &str) -> Result<(), String> {
    let listener = listen(port)?;
    println!("api listening on http://127.0.0.1:{port} (store at {store})");
    for mut stream in listener.incoming().flatten() {
        let request = read_request_head(&mut stream);
        let path = request.split_whitespace().nth(1).unwrap_or("/");
        let (status, body) = match path {
            "/health" => match TcpStream::connect(store) {
                Ok(_) => ("200 OK", "ok".to_string()),
                Err(e) => ("503 Service Unavailable", format!("store unreachable: {e}")),
            },
            "/hits" => match store_incr(store, "hits") {
                Ok(n) => ("200 OK", n),
                Err(e) => ("502 Bad Gateway", e),
            },
            _ => ("404 Not Found", "not found".to_string()),
        };
        let response = format!(
            "HTTP/1.1 {status}\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{body}",
            body.len()
        );
        let _ = stream.write_all(response.as_bytes());
    }
    Ok(())
}

/// Reads until the blank line that ends an HTTP request head (or 8 KiB, or 1 s).
fn read_request_head(stream: &mut TcpStream) -> String {
    let _ = stream.set_read_timeout(Some(Duration::from_secs(1)));
    let mut head = Vec::new();
    let mut buf = [0u8; 1024];
    while !head.windows(4).any(|w| w == b"\r\n\r\n") && head.len() < 8192 {
        match stream.read(&mut buf) {
            Ok(0) | Err(_) => break,
            Ok(n) => head.extend_from_slice(&buf[..n]),
        }
    }
    String::from_utf8_lossy(&head).into_owned()
}

fn get(addr: &str, path: &str) -> Result<String, String> {
    let mut stream = TcpStream::connect(addr).map_err(|e| format!("api {addr}: {e}"))?;
    stream
        .set_read_timeout(Some(Duration::from_secs(1)))
        .map_err(|e| e.to_string())?;
    // One write: a server that reads once must see the whole request head.
    let request = format!("GET {path} HTTP/1.1\r\nHost: {addr}\r\nConnection: close\r\n\r\n");
    stream.write_all(request.as_bytes()).map_err(|e| e.to_string())?;
    let mut response = String::new();
    stream.read_to_string(&mut response).map_err(|e| e.to_string())?;
    match response.split_once("\r\n\r\n") {
        Some((head, body)) if head.starts_with("HTTP/1.1 200") => Ok(body.to_string()),
        _ => Err(format!("unexpected answer: {}", response.lines().next().unwrap_or(""))),
    }
}

fn worker(api: &str, heartbeat: &str) -> Result<(), String> {
    println!("worker calling http://{api}/hits");
    loop {
        match get(api, "/hits") {
            Ok(hits) => {
                std::fs::write(heartbeat, format!("{hits}\n")).map_err(|e| format!("cannot write {heartbeat}: {e}"))?;
                println!("worker: hits = {hits}");
            }
            Err(e) => eprintln!("worker: {e}"),
        }
        thread::sleep(Duration::from_millis(500));
    }
}

fn heartbeat_fresh(file: &str) -> Result<(), String> {
    let modified = std::fs::metadata(file)
        .and_then(|m| m.modified())
        .map_err(|e| format!("{file}: {e}"))?;
    let age = SystemTime::now().duration_since(modified).unwrap_or_default();
    if age < Duration::from_secs(5) {
        Ok(())
    } else {
        Err(format!("{file} is {}s old", age.as_secs()))
    }
}
