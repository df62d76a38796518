//! `rediss://`: the store speaks TLS and verifies the server's certificate.

mod support;

use std::process::Command;

#[test]
fn rediss_counts_over_tls_and_checks_the_certificate() {
    let (server, cert) = support::RedisServer::start_tls();
    let uri = format!("rediss://127.0.0.1:{}", server.port);
    let load = |trusted: bool| {
        let mut command = Command::new(support::load_example());
        command.args([uri.as_str(), "fixed-window", "5/minute", "1", "2", "10"]);
        if trusted {
            // OpenSSL's default trust store can be pointed at a file.
            command.env("SSL_CERT_FILE", &cert);
        }
        command
            .output()
            .expect("load example (built by cargo test)")
    };
    let trusted = load(true);
    let stdout = String::from_utf8_lossy(&trusted.stdout);
    assert!(
        trusted.status.success(),
        "{stdout}{}",
        String::from_utf8_lossy(&trusted.stderr)
    );
    assert!(stdout.contains("\"allowed\": 5,"), "{stdout}");
    // Without the certificate in the trust store the connection is refused.
    let untrusted = load(false);
    assert!(!untrusted.status.success());
    let stderr = String::from_utf8_lossy(&untrusted.stderr);
    assert!(stderr.contains("cannot connect to redis"), "{stderr}");
}
