//! The `behind_proxy` example behind a real nginx (Debian's `nginx-light`), which appends the
//! peer address it sees to `X-Forwarded-For`. Clients are told apart by their source address
//! (`127.0.0.2`, `127.0.0.3`: Linux routes all of `127.0.0.0/8` to the loopback interface).
//!
//! nginx is required: without `/usr/sbin/nginx` these tests fail (`.ci/run` installs it).

mod support;

use std::fs;
use std::net::{IpAddr, Ipv4Addr, SocketAddr, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use support::{Reply, free_port, get_from, start_example};

const NGINX: &str = "/usr/sbin/nginx";

/// An nginx in the foreground, single process, proxying `127.0.0.1:<port>` to an upstream,
/// with its configuration, logs and temporary files in a directory of its own. Killed (and
/// the directory removed) when dropped.
struct Nginx {
    child: Child,
    dir: PathBuf,
    addr: SocketAddr,
}

impl Nginx {
    /// Starts nginx in front of `upstream` and waits until it listens, on another port if
    /// something took the chosen one first.
    fn start(upstream: SocketAddr) -> Nginx {
        assert!(
            Path::new(NGINX).exists(),
            "nginx is required for these tests and was not found at {NGINX}: \
             install Debian's nginx-light (`apt-get install -y nginx-light`), as .ci/run does"
        );
        for attempt in 1.. {
            let addr = SocketAddr::new(IpAddr::V4(Ipv4Addr::LOCALHOST), free_port());
            match Nginx::try_start(upstream, addr) {
                Ok(nginx) => return nginx,
                Err(log) if log.contains("Address already in use") && attempt < 5 => continue,
                Err(log) => panic!("nginx did not start on {addr}; error log:\n{log}"),
            }
        }
        unreachable!("the loop returns or panics")
    }

    /// Starts nginx on `addr` and waits (at most 10 s) until it has bound it: nginx writes
    /// its pid file once its listening sockets are open. `Err` holds its error log if it
    /// exits first.
    fn try_start(upstream: SocketAddr, addr: SocketAddr) -> Result<Nginx, String> {
        let dir = std::env::temp_dir().join(format!(
            "tollgate-nginx-{}-{}",
            std::process::id(),
            addr.port()
        ));
        fs::create_dir_all(&dir).expect("nginx temp dir");
        let d = dir.display();
        let config = format!(
            r#"daemon off;
master_process off;
worker_processes 1;
pid {d}/nginx.pid;
error_log {d}/error.log info;
events {{
    worker_connections 64;
}}
http {{
    access_log {d}/access.log;
    client_body_temp_path {d}/client_body;
    proxy_temp_path {d}/proxy;
    fastcgi_temp_path {d}/fastcgi;
    uwsgi_temp_path {d}/uwsgi;
    scgi_temp_path {d}/scgi;
    server {{
        listen {addr};
        location / {{
            proxy_pass http://{upstream};
            proxy_set_header Host $host;
            proxy_set_header X-Forwarded-For $proxy_add_x_forwarded_for;
        }}
    }}
}}
"#
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

fn ip(text: &str) -> IpAddr {
    text.parse().expect("an IP address")
}

fn pong_from(reply: &Reply, client: &str) {
    assert_eq!(
        (reply.status, reply.body.as_str()),
        (200, format!("pong from {client}").as_str()),
        "{reply:?}"
    );
}

fn denied(reply: &Reply) {
    assert_eq!(reply.status, 429, "{reply:?}");
    let retry_after: u64 = reply
        .header("retry-after")
        .and_then(|v| v.parse().ok())
        .unwrap_or_else(|| panic!("429 without a numeric Retry-After: {reply:?}"));
    assert!((1..=60).contains(&retry_after), "{reply:?}");
}

#[test]
fn clients_behind_nginx_are_limited_apart() {
    let app = start_example("behind_proxy");
    let nginx = Nginx::start(app.addr);
    let (two, three) = (ip("127.0.0.2"), ip("127.0.0.3"));

    pong_from(&get_from(two, nginx.addr, "/ping", &[]), "127.0.0.2");
    pong_from(&get_from(three, nginx.addr, "/ping", &[]), "127.0.0.3");
    pong_from(&get_from(two, nginx.addr, "/ping", &[]), "127.0.0.2");
    // 127.0.0.2 has used its 2 per minute; 127.0.0.3 has one left.
    denied(&get_from(two, nginx.addr, "/ping", &[]));
    pong_from(&get_from(three, nginx.addr, "/ping", &[]), "127.0.0.3");
    denied(&get_from(three, nginx.addr, "/ping", &[]));
    denied(&get_from(two, nginx.addr, "/ping", &[]));
}

#[test]
fn forged_x_forwarded_for_through_nginx_does_not_change_the_key() {
    let app = start_example("behind_proxy");
    let nginx = Nginx::start(app.addr);
    let client = ip("127.0.0.3");

    // nginx appends the address it sees: the upstream gets `10.9.9.N, 127.0.0.3` and keys on
    // the rightmost untrusted address, whatever the client wrote before it.
    let forged: Vec<String> = (1..=4).map(|n| format!("10.9.9.{n}")).collect();
    for (n, value) in forged.iter().enumerate() {
        let reply = get_from(client, nginx.addr, "/ping", &[("X-Forwarded-For", value)]);
        if n < 2 {
            pong_from(&reply, "127.0.0.3");
        } else {
            denied(&reply);
        }
    }
    // Nor does a whole forged chain, or a forged `X-Real-IP`/`Forwarded`.
    let chain = [
        ("X-Forwarded-For", "203.0.113.1, 198.51.100.2, 127.0.0.1"),
        ("X-Real-IP", "10.9.9.9"),
        ("Forwarded", "for=10.9.9.10"),
    ];
    denied(&get_from(client, nginx.addr, "/ping", &chain));
    // Another client behind the same nginx still has its own allowance.
    pong_from(
        &get_from(
            ip("127.0.0.4"),
            nginx.addr,
            "/ping",
            &[("X-Forwarded-For", "10.9.9.1")],
        ),
        "127.0.0.4",
    );
}
