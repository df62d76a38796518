//! Slow and idle clients are closed by the server, and cannot starve the others: header,
//! body and keep-alive timeouts, and a cap on connections.

mod support;

use std::io::{Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::time::{Duration, Instant};

use support::{Tollgate, request, write_config};

fn serve(max_connections: u32) -> Tollgate {
    let path = write_config(
        "tollgate.toml",
        &format!(
            "[server]\nlisten = \"127.0.0.1:0\"\nheader_timeout = \"1s\"\nbody_timeout = \"1s\"\n\
             keepalive_timeout = \"1s\"\nmax_connections = {max_connections}\n"
        ),
    );
    Tollgate::serve(&["--config", path.to_str().expect("utf-8 path")], &[])
}

/// Reads until the server closes the socket (or errors); how long that took, and what came.
fn until_closed(mut stream: TcpStream) -> (Duration, String) {
    stream
        .set_read_timeout(Some(Duration::from_secs(10)))
        .expect("read timeout");
    let started = Instant::now();
    let mut got = Vec::new();
    let mut buf = [0; 1024];
    loop {
        match stream.read(&mut buf) {
            Ok(0) | Err(_) => break,
            Ok(n) => got.extend_from_slice(&buf[..n]),
        }
    }
    (
        started.elapsed(),
        String::from_utf8_lossy(&got).into_owned(),
    )
}

fn connect(addr: SocketAddr, sent: &[u8]) -> TcpStream {
    let mut stream = TcpStream::connect(addr).expect("connect");
    stream.write_all(sent).expect("write");
    stream
}

#[test]
fn headers_that_never_finish_are_closed() {
    let tollgate = serve(100);
    let stream = connect(tollgate.api(), b"POST /v1/check HTTP/1.1\r\nHost: x\r\n");
    let (took, _) = until_closed(stream);
    assert!(took < Duration::from_secs(5), "closed after {took:?}");
}

#[test]
fn idle_keep_alive_connections_are_closed() {
    let tollgate = serve(100);
    let stream = connect(tollgate.api(), b"GET /healthz HTTP/1.1\r\nHost: x\r\n\r\n");
    let (took, answer) = until_closed(stream);
    assert!(answer.starts_with("HTTP/1.1 200"), "{answer}");
    assert!(took < Duration::from_secs(5), "closed after {took:?}");
}

#[test]
fn a_body_that_never_finishes_is_closed() {
    let tollgate = serve(100);
    let stream = connect(
        tollgate.api(),
        b"POST /v1/check HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n\
          Content-Length: 100\r\n\r\n{\"key\": \"a",
    );
    let (took, answer) = until_closed(stream);
    assert!(took < Duration::from_secs(5), "closed after {took:?}");
    assert!(!answer.starts_with("HTTP/1.1 200"), "{answer}");
}

#[test]
fn a_client_is_served_once_idlers_filling_the_cap_time_out() {
    let tollgate = serve(2);
    let idlers: Vec<TcpStream> = (0..2)
        .map(|_| connect(tollgate.api(), b"GET /healthz HTTP/1.1\r\nHost: x\r\n"))
        .collect();
    std::thread::sleep(Duration::from_millis(200));
    let started = Instant::now();
    let reply = request(tollgate.api(), "GET", "/healthz", &[], "");
    assert_eq!(reply.status, 200);
    // It waited for the idlers to be closed, at most their header timeout and a little more.
    assert!(
        started.elapsed() >= Duration::from_millis(500),
        "{:?}",
        started.elapsed()
    );
    assert!(
        started.elapsed() < Duration::from_secs(5),
        "{:?}",
        started.elapsed()
    );
    drop(idlers);
}
