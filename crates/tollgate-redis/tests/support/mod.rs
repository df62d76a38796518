//! Real redis-server processes for the tests: each on a free loopback port, in its own
//! directory, killed when dropped.

#![allow(dead_code, unreachable_pub)]

pub mod compare;

use std::net::{TcpListener, TcpStream};
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

/// A redis-server this test started.
#[derive(Debug)]
pub struct RedisServer {
    pub port: u16,
    child: Option<Child>,
    dir: PathBuf,
    /// The arguments that set its ports and mode (plain, cluster or TLS).
    args: Vec<String>,
}

/// The `load` example, built next to the test binaries by `cargo test`.
pub fn load_example() -> PathBuf {
    let exe = std::env::current_exe().expect("test binary path");
    let dir = exe
        .parent()
        .and_then(|deps| deps.parent())
        .expect("target dir");
    dir.join("examples").join("load")
}

/// A fresh working directory for a server of `kind` on `port`.
fn server_dir(kind: &str, port: u16) -> PathBuf {
    let dir = std::env::temp_dir().join(format!("tollgate-{kind}-{}-{port}", std::process::id()));
    std::fs::create_dir_all(&dir).expect("server dir");
    dir
}

/// A port nothing listens on right now.
pub fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .map(|a| a.port())
        .expect("a free port")
}

impl RedisServer {
    /// Starts a plain redis-server on a free port.
    pub fn start() -> Self {
        Self::start_with(&[])
    }

    /// Starts a redis-server with extra arguments (such as cluster mode).
    pub fn start_with(extra: &[&str]) -> Self {
        let port = free_port();
        let mut args = vec!["--port".to_owned(), port.to_string()];
        args.extend(extra.iter().map(|s| s.to_string()));
        Self::launch(port, server_dir("redis", port), args)
    }

    /// A server on `port`, working in `dir` (removed when dropped), started with `args`.
    fn launch(port: u16, dir: PathBuf, args: Vec<String>) -> Self {
        let mut server = Self {
            port,
            child: None,
            dir,
            args,
        };
        server.spawn();
        server
    }

    pub fn uri(&self) -> String {
        format!("redis://127.0.0.1:{}", self.port)
    }

    /// Starts a redis-server that speaks only TLS, with a self-signed certificate for
    /// 127.0.0.1 made by the openssl command; returns it and the certificate's path.
    pub fn start_tls() -> (Self, PathBuf) {
        let port = free_port();
        let dir = server_dir("tls", port);
        let (cert, key) = (dir.join("cert.pem"), dir.join("key.pem"));
        let made = Command::new("openssl")
            .args([
                "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "1",
            ])
            .args([
                "-subj",
                "/CN=127.0.0.1",
                "-addext",
                "subjectAltName=IP:127.0.0.1",
            ])
            .arg("-keyout")
            .arg(&key)
            .arg("-out")
            .arg(&cert)
            .output()
            .expect("openssl on the PATH");
        assert!(
            made.status.success(),
            "{}",
            String::from_utf8_lossy(&made.stderr)
        );
        let (cert_arg, key_arg) = (cert.display().to_string(), key.display().to_string());
        let args = [
            "--port",
            "0",
            "--tls-port",
            &port.to_string(),
            "--tls-cert-file",
            &cert_arg,
            "--tls-key-file",
            &key_arg,
            "--tls-ca-cert-file",
            &cert_arg,
            "--tls-auth-clients",
            "no",
        ];
        let args = args.iter().map(|s| s.to_string()).collect();
        let server = Self::launch(port, dir, args);
        (server, cert)
    }

    fn spawn(&mut self) {
        let child = Command::new("redis-server")
            .args(&self.args)
            .args(["--bind", "127.0.0.1", "--protected-mode", "no"])
            .args(["--save", "", "--appendonly", "no"])
            .arg("--dir")
            .arg(&self.dir)
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("redis-server on the PATH");
        self.child = Some(child);
        // Redis accepts connections once it is ready (plain or TLS alike).
        let deadline = Instant::now() + Duration::from_secs(10);
        while TcpStream::connect(("127.0.0.1", self.port)).is_err() {
            assert!(
                Instant::now() < deadline,
                "redis-server did not start on {}",
                self.port
            );
            std::thread::sleep(Duration::from_millis(20));
        }
    }

    /// Runs redis-cli against this server and returns its output.
    pub fn cli(&self, args: &[&str]) -> String {
        let out = Command::new("redis-cli")
            .args(["-h", "127.0.0.1", "-p", &self.port.to_string()])
            .args(args)
            .output()
            .expect("redis-cli on the PATH");
        String::from_utf8_lossy(&out.stdout).into_owned()
    }

    /// `kill -9`: the server dies at once, mid-load if there is one.
    pub fn kill(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }

    /// Starts the server again on the same port (empty, as after a crash without persistence).
    pub fn restart(&mut self) {
        self.kill();
        let deadline = Instant::now() + Duration::from_secs(10);
        while TcpStream::connect(("127.0.0.1", self.port)).is_ok() {
            assert!(Instant::now() < deadline, "port {} stays busy", self.port);
            std::thread::sleep(Duration::from_millis(20));
        }
        self.spawn();
    }
}

impl Drop for RedisServer {
    fn drop(&mut self) {
        self.kill();
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

/// A 3-master Redis Cluster on loopback.
#[derive(Debug)]
pub struct RedisCluster {
    pub nodes: Vec<RedisServer>,
}

impl RedisCluster {
    pub fn start() -> Self {
        Self::start_with(&[])
    }

    /// A cluster whose nodes also get `extra` arguments (such as
    /// `--cluster-require-full-coverage no`).
    pub fn start_with(extra: &[&str]) -> Self {
        let nodes: Vec<RedisServer> = (0..3)
            .map(|_| {
                let mut args = vec!["--cluster-enabled", "yes", "--cluster-node-timeout", "2000"];
                args.extend_from_slice(extra);
                RedisServer::start_with(&args)
            })
            .collect();
        let addresses: Vec<String> = nodes
            .iter()
            .map(|n| format!("127.0.0.1:{}", n.port))
            .collect();
        let out = Command::new("redis-cli")
            .args(["--cluster", "create"])
            .args(&addresses)
            .args(["--cluster-replicas", "0", "--cluster-yes"])
            .output()
            .expect("redis-cli --cluster create");
        assert!(
            out.status.success(),
            "{}",
            String::from_utf8_lossy(&out.stdout)
        );
        let deadline = Instant::now() + Duration::from_secs(20);
        while !nodes
            .iter()
            .all(|n| n.cli(&["CLUSTER", "INFO"]).contains("cluster_state:ok"))
        {
            assert!(Instant::now() < deadline, "cluster did not become ok");
            std::thread::sleep(Duration::from_millis(50));
        }
        Self { nodes }
    }

    pub fn uri(&self) -> String {
        let nodes: Vec<String> = self
            .nodes
            .iter()
            .map(|n| format!("127.0.0.1:{}", n.port))
            .collect();
        format!("redis+cluster://{}", nodes.join(","))
    }

    /// Every key on every node matching `pattern`.
    pub fn keys(&self, pattern: &str) -> Vec<String> {
        self.nodes
            .iter()
            .flat_map(|n| {
                n.cli(&["--scan", "--pattern", pattern])
                    .lines()
                    .map(str::to_owned)
                    .collect::<Vec<_>>()
            })
            .filter(|l| !l.is_empty())
            .collect()
    }
}
