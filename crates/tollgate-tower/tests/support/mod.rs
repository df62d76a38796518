//! What the end-to-end tests share: the examples as processes, and a minimal
//! HTTP/1.1 client over a plain socket (so a test controls every header byte it sends).

#![allow(dead_code, unreachable_pub)]

use std::io::{BufRead, BufReader};
use std::net::{IpAddr, SocketAddr, TcpStream};
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::sync::mpsc;
use std::time::{Duration, Instant};

use socket2::{Domain, Protocol, Socket, Type};

mod http;

pub use http::{Reply, exchange};

/// An example of this crate, built next to the test binaries by `cargo test`.
pub fn example(name: &str) -> PathBuf {
    let exe = std::env::current_exe().expect("test binary path");
    let dir = exe
        .parent()
        .and_then(|deps| deps.parent())
        .expect("target dir");
    dir.join("examples").join(name)
}

/// A process that is killed when dropped.
pub struct Process {
    child: Child,
    pub addr: SocketAddr,
}

impl Drop for Process {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// Runs the example `name` listening on `127.0.0.1:0`, and waits (at most 10 s) until it
/// prints the address it listens on (`listening on http://ADDR`).
///
/// The example binds the port itself, so no other process can take it between choosing and
/// binding it (as with a port chosen free beforehand, when tests run in parallel).
pub fn start_example(name: &str) -> Process {
    let mut child = Command::new(example(name))
        .arg("127.0.0.1:0")
        .stdout(Stdio::piped())
        .stderr(Stdio::inherit())
        .spawn()
        .unwrap_or_else(|err| panic!("cannot run example {name}: {err}"));
    let stdout = child.stdout.take().expect("piped stdout");
    // Killed on drop from here on, even if it never says where it listens.
    let mut process = Process {
        child,
        addr: SocketAddr::from(([127, 0, 0, 1], 0)),
    };
    let (listening, address) = mpsc::channel();
    std::thread::spawn(move || {
        let mut lines = BufReader::new(stdout).lines();
        for line in lines.by_ref().map_while(Result::ok) {
            if let Some((_, addr)) = line.split_once("listening on http://") {
                let _ = listening.send(addr.trim().to_owned());
                break;
            }
        }
        // Keep reading, so that the example never blocks on a full pipe.
        lines.for_each(drop);
    });
    let addr = address
        .recv_timeout(Duration::from_secs(10))
        .unwrap_or_else(|_| panic!("example {name} did not say where it listens within 10 s"));
    process.addr = addr
        .parse()
        .unwrap_or_else(|err| panic!("example {name} listens on {addr:?}: {err}"));
    process
}

/// Waits (at most 10 s) until something accepts connections on `addr`.
pub fn wait_for_port(addr: SocketAddr) {
    let deadline = Instant::now() + Duration::from_secs(10);
    while TcpStream::connect(addr).is_err() {
        assert!(Instant::now() < deadline, "nothing listens on {addr}");
        std::thread::sleep(Duration::from_millis(20));
    }
}

/// `GET path` on `addr` with extra `headers`, over a fresh connection.
pub fn get(addr: SocketAddr, path: &str, headers: &[(&str, &str)]) -> Reply {
    let stream = TcpStream::connect(addr).expect("connect");
    exchange(stream, addr, "GET", path, headers, "")
}

/// `GET path` on `addr` with extra `headers`, over a fresh connection whose source address
/// is `source` (any port). On Linux every address of `127.0.0.0/8` is local, so
/// `127.0.0.2`, `127.0.0.3`... make distinct clients of a server on `127.0.0.1`.
pub fn get_from(source: IpAddr, addr: SocketAddr, path: &str, headers: &[(&str, &str)]) -> Reply {
    let socket =
        Socket::new(Domain::for_address(addr), Type::STREAM, Some(Protocol::TCP)).expect("socket");
    socket
        .bind(&SocketAddr::new(source, 0).into())
        .unwrap_or_else(|err| panic!("cannot bind the client socket to {source}: {err}"));
    socket
        .connect_timeout(&addr.into(), Duration::from_secs(10))
        .unwrap_or_else(|err| panic!("cannot connect from {source} to {addr}: {err}"));
    exchange(socket.into(), addr, "GET", path, headers, "")
}
