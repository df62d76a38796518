//! A real nginx (Debian's `nginx-light`) with the `location` blocks a test gives it: as an
//! upstream (it decodes `%2F` and resolves dot segments before it matches its locations, as
//! many servers do, so it shows what a path means to an upstream; the proxy tests here), or
//! as a proxy in front of an app (`crates/tollgate-tower/tests/nginx.rs`, which includes this
//! file).
//!
//! nginx is required: without `/usr/sbin/nginx` these tests fail (`.ci/run` installs it).

#![allow(dead_code, unreachable_pub)]

use std::fs;
use std::net::{IpAddr, Ipv4Addr, SocketAddr, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

const NGINX: &str = "/usr/sbin/nginx";

/// nginx in the foreground, single process, with its files in a directory of its own;
/// killed (and the directory removed) when dropped.
pub struct Nginx {
    child: Child,
    dir: PathBuf,
    /// Where it listens.
    pub addr: SocketAddr,
}

impl Nginx {
    /// Starts nginx with `locations` (nginx `location` blocks) in its one server, and waits
    /// until it listens (on another port if something took the chosen one first).
    pub fn start(locations: &str) -> Nginx {
        assert!(
            Path::new(NGINX).exists(),
            "nginx is required for these tests and was not found at {NGINX}: \
             install Debian's nginx-light (`apt-get install -y nginx-light`), as .ci/run does"
        );
        for attempt in 1.. {
            let port = std::net::TcpListener::bind("127.0.0.1:0")
                .and_then(|listener| listener.local_addr())
                .expect("a free port")
                .port();
            let addr = SocketAddr::new(IpAddr::V4(Ipv4Addr::LOCALHOST), port);
            match Nginx::try_start(locations, addr) {
                Ok(nginx) => return nginx,
                Err(log) if log.contains("Address already in use") && attempt < 5 => continue,
                Err(log) => panic!("nginx did not start on {addr}; error log:\n{log}"),
            }
        }
        unreachable!("the loop returns or panics")
    }

    /// Starts nginx on `addr` and waits (at most 10 s) for its pid file, written once it
    /// listens. `Err` holds its error log if it exits first.
    fn try_start(locations: &str, addr: SocketAddr) -> Result<Nginx, String> {
        let dir = std::env::temp_dir().join(format!(
            "tollgate-nginx-{}-{}",
            std::process::id(),
            addr.port()
        ));
        fs::create_dir_all(&dir).expect("nginx temp dir");
        let d = dir.display();
        let config = format!(
            "daemon off;\nmaster_process off;\nworker_processes 1;\npid {d}/nginx.pid;\n\
             error_log {d}/error.log info;\nevents {{ worker_connections 64; }}\n\
             http {{\n    access_log {d}/access.log;\n    client_body_temp_path {d}/client_body;\n\
             proxy_temp_path {d}/proxy;\n    fastcgi_temp_path {d}/fastcgi;\n\
             uwsgi_temp_path {d}/uwsgi;\n    scgi_temp_path {d}/scgi;\n\
             server {{\n        listen {addr};\n{locations}\n    }}\n}}\n"
        );
        let config_path = dir.join("nginx.conf");
        fs::write(&config_path, config).expect("write nginx.conf");
        let child = Command::new(NGINX)
            .arg("-p")
            .arg(&dir)
            .arg("-e")
            .arg(dir.join("error.log"))
            .arg("-c")
            .arg(&config_path)
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::inherit())
            .spawn()
            .unwrap_or_else(|err| panic!("cannot run {NGINX}: {err}"));
        let mut nginx = Nginx { child, dir, addr };
        let pid = nginx.child.id().to_string();
        let deadline = Instant::now() + Duration::from_secs(10);
        loop {
            if let Ok(Some(status)) = nginx.child.try_wait() {
                return Err(format!("(nginx exited: {status})\n{}", nginx.error_log()));
            }
            let pid_file = fs::read_to_string(nginx.dir.join("nginx.pid")).unwrap_or_default();
            if pid_file.trim() == pid && TcpStream::connect(addr).is_ok() {
                return Ok(nginx);
            }
            if Instant::now() > deadline {
                return Err(format!("(no pid file after 10 s)\n{}", nginx.error_log()));
            }
            std::thread::sleep(Duration::from_millis(20));
        }
    }

    fn error_log(&self) -> String {
        fs::read_to_string(self.dir.join("error.log")).unwrap_or_default()
    }
}

impl Drop for Nginx {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
        let _ = fs::remove_dir_all(&self.dir);
    }
}
