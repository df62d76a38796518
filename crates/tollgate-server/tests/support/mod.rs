//! What the end-to-end tests share: the `tollgate` binary as a process on ephemeral ports,
//! and a minimal HTTP/1.1 client over a plain socket.

#![allow(dead_code, unreachable_pub)]

use std::io::{BufRead, BufReader};
use std::net::{SocketAddr, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Child, ChildStdout, Command, Stdio};
use std::time::Duration;

#[path = "../../../tollgate-tower/tests/support/http.rs"]
mod http;

pub use http::{Reply, exchange};

/// A `tollgate serve` process, stopped with SIGTERM (then killed) when dropped.
pub struct Tollgate {
    child: Child,
    /// Where each listener said it listens: ("check API", address), ...
    pub listening: Vec<(String, SocketAddr)>,
    _stdout: BufReader<ChildStdout>,
}

impl Tollgate {
    /// Runs `tollgate serve` with `args`, and waits until the check API listens (and the
    /// listeners named in `also`).
    pub fn serve(args: &[&str], also: &[&str]) -> Self {
        Self::serve_logging_to(args, also, Stdio::inherit())
    }

    /// As [`Tollgate::serve`], with the log (standard error) going to `log`.
    pub fn serve_logging_to(args: &[&str], also: &[&str], log: Stdio) -> Self {
        let mut command = Command::new(env!("CARGO_BIN_EXE_tollgate"));
        command.arg("serve").args(args);
        Self::run(command, also, log)
    }

    /// As [`Tollgate::serve_logging_to`], with `env` set for the process (`RUST_LOG`).
    pub fn serve_with_env(args: &[&str], also: &[&str], env: &[(&str, &str)], log: Stdio) -> Self {
        let mut command = Command::new(env!("CARGO_BIN_EXE_tollgate"));
        command.arg("serve").args(args).envs(env.iter().copied());
        Self::run(command, also, log)
    }

    /// As [`Tollgate::serve`], in a process that may open at most `files` files (its soft
    /// and hard `RLIMIT_NOFILE`, set by the shell that runs it).
    pub fn serve_with_open_files(args: &[&str], also: &[&str], files: u32) -> Self {
        let mut command = Command::new("sh");
        command
            .arg("-c")
            .arg(format!("ulimit -n {files} && exec \"$0\" serve \"$@\""))
            .arg(env!("CARGO_BIN_EXE_tollgate"))
            .args(args);
        Self::run(command, also, Stdio::inherit())
    }

    /// Runs `command`, a `tollgate serve`, and waits until its listeners listen.
    fn run(mut command: Command, also: &[&str], log: Stdio) -> Self {
        let mut child = command
            .stdout(Stdio::piped())
            .stderr(log)
            .spawn()
            .expect("the tollgate binary runs");
        let mut stdout = BufReader::new(child.stdout.take().expect("piped stdout"));
        let mut listening = Vec::new();
        let wanted = 1 + also.len();
        while listening.len() < wanted {
            let mut line = String::new();
            let read = stdout.read_line(&mut line).expect("read stdout");
            assert!(
                read > 0,
                "tollgate exited before listening: {:?}",
                child.wait()
            );
            if let Some((what, addr)) = line.trim().split_once(" listening on http://") {
                listening.push((what.to_owned(), addr.parse().expect("an address")));
            }
        }
        Self {
            child,
            listening,
            _stdout: stdout,
        }
    }

    /// The address the listener `what` bound.
    pub fn addr(&self, what: &str) -> SocketAddr {
        self.listening
            .iter()
            .find(|(name, _)| name == what)
            .map(|(_, addr)| *addr)
            .unwrap_or_else(|| panic!("no {what} listener in {:?}", self.listening))
    }

    /// The check API's address.
    pub fn api(&self) -> SocketAddr {
        self.addr("check API")
    }

    /// Sends `signal` (`HUP`, `TERM`).
    pub fn signal(&self, signal: &str) {
        let status = Command::new("kill")
            .arg(format!("-{signal}"))
            .arg(self.child.id().to_string())
            .status()
            .expect("kill runs");
        assert!(status.success());
    }

    /// Sends SIGTERM and waits (at most 10 s) for the exit status.
    pub fn stop(mut self) -> std::process::ExitStatus {
        self.signal("TERM");
        for _ in 0..200 {
            if let Some(status) = self.child.try_wait().expect("wait") {
                return status;
            }
            std::thread::sleep(Duration::from_millis(50));
        }
        panic!("tollgate did not stop within 10 s of SIGTERM");
    }
}

impl Drop for Tollgate {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// Runs `tollgate check-config file`: (success, stdout, stderr).
pub fn check_config(file: &Path) -> (bool, String, String) {
    let output = Command::new(env!("CARGO_BIN_EXE_tollgate"))
        .arg("check-config")
        .arg(file)
        .output()
        .expect("the tollgate binary runs");
    (
        output.status.success(),
        String::from_utf8_lossy(&output.stdout).into_owned(),
        String::from_utf8_lossy(&output.stderr).into_owned(),
    )
}

/// Writes `text` to a fresh file called `name` in a directory of its own.
pub fn write_config(name: &str, text: &str) -> PathBuf {
    let dir = std::env::temp_dir().join(format!(
        "tollgate-server-test-{}-{}",
        std::process::id(),
        COUNTER.fetch_add(1, std::sync::atomic::Ordering::SeqCst)
    ));
    std::fs::create_dir_all(&dir).expect("temp dir");
    let path = dir.join(name);
    std::fs::write(&path, text).expect("write config");
    path
}

static COUNTER: std::sync::atomic::AtomicU64 = std::sync::atomic::AtomicU64::new(0);

/// Sends `method path` with `headers` and `body` to `addr` over a fresh connection.
pub fn request(
    addr: SocketAddr,
    method: &str,
    path: &str,
    headers: &[(&str, &str)],
    body: &str,
) -> Reply {
    let stream = TcpStream::connect(addr).expect("connect");
    exchange(stream, addr, method, path, headers, body)
}

/// `POST path` with a JSON `body`.
pub fn post(addr: SocketAddr, path: &str, body: &str) -> Reply {
    request(
        addr,
        "POST",
        path,
        &[("Content-Type", "application/json")],
        body,
    )
}

/// A port nothing listens on right now.
pub fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .and_then(|listener| listener.local_addr())
        .map(|addr| addr.port())
        .expect("a free port")
}
