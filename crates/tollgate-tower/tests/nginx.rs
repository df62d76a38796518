//! The `behind_proxy` example behind a real nginx (Debian's `nginx-light`), which appends the
//! peer address it sees to `X-Forwarded-For`. Clients are told apart by their source address
//! (`127.0.0.2`, `127.0.0.3`: Linux routes all of `127.0.0.0/8` to the loopback interface).
//!
//! nginx is required: without `/usr/sbin/nginx` these tests fail (`.ci/run` installs it).

mod support;

use std::net::{IpAddr, SocketAddr};

use support::{Reply, get_from, start_example};

#[path = "../../tollgate-server/tests/support/nginx.rs"]
mod nginx;

/// nginx in front of `app`, appending the peer it sees to `X-Forwarded-For`.
fn nginx_before(app: SocketAddr) -> nginx::Nginx {
    nginx::Nginx::start(&format!(
        "        location / {{\n            proxy_pass http://{app};\n            \
         proxy_set_header Host $host;\n            \
         proxy_set_header X-Forwarded-For $proxy_add_x_forwarded_for;\n        }}"
    ))
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
    let nginx = nginx_before(app.addr);
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
    let nginx = nginx_before(app.addr);
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
