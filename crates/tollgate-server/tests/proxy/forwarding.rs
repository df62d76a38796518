//! What the upstream receives: `X-Forwarded-*`, trusted peers, `Host`, hop-by-hop fields.

use super::*;

#[tokio::test]
async fn x_forwarded_for_is_extended_with_the_peer() {
    let upstream = upstream().await;
    let proxy = proxy(TRUSTING, &upstream).await;
    let trusted = client();
    let untrusted = untrusted_client();

    let answer = get_from(&untrusted, proxy, "/echo", &[]).await;
    assert_eq!(
        answer.received("x-forwarded-for").as_deref(),
        Some("127.0.0.2")
    );

    let answer = get_from(
        &untrusted,
        proxy,
        "/echo",
        &[("x-forwarded-for", "203.0.113.9")],
    )
    .await;
    assert_eq!(
        answer.received("x-forwarded-for").as_deref(),
        Some("203.0.113.9, 127.0.0.2")
    );

    let answer = get_from(
        &trusted,
        proxy,
        "/echo",
        &[("x-forwarded-for", "198.51.100.7, 10.0.0.1")],
    )
    .await;
    assert_eq!(
        answer.received("x-forwarded-for").as_deref(),
        Some("198.51.100.7, 10.0.0.1, 127.0.0.1")
    );

    // Several fields are one list, in order.
    let answer = get_from(
        &trusted,
        proxy,
        "/echo",
        &[
            ("x-forwarded-for", "192.0.2.1"),
            ("x-forwarded-for", "192.0.2.2"),
        ],
    )
    .await;
    assert_eq!(
        answer.received("x-forwarded-for").as_deref(),
        Some("192.0.2.1, 192.0.2.2, 127.0.0.1")
    );
}

#[tokio::test]
async fn only_a_trusted_peer_chooses_the_client_ip_that_pays() {
    let upstream = upstream().await;
    let proxy = proxy(TRUSTING, &upstream).await;
    let trusted = client();
    let untrusted = untrusted_client();

    // Untrusted: the header changes nothing, the peer pays.
    let first = get_from(
        &untrusted,
        proxy,
        "/once",
        &[("x-forwarded-for", "203.0.113.1")],
    )
    .await;
    assert_eq!(first.status, StatusCode::OK);
    let second = get_from(
        &untrusted,
        proxy,
        "/once",
        &[("x-forwarded-for", "203.0.113.2")],
    )
    .await;
    assert_eq!(second.status, StatusCode::TOO_MANY_REQUESTS);

    // Trusted: each forwarded client pays for itself.
    for (client_ip, status) in [
        ("198.51.100.1", StatusCode::OK),
        ("198.51.100.2", StatusCode::OK),
        ("198.51.100.1", StatusCode::TOO_MANY_REQUESTS),
    ] {
        let answer = get_from(&trusted, proxy, "/once", &[("x-forwarded-for", client_ip)]).await;
        assert_eq!(answer.status, status, "client {client_ip}");
    }
}

/// `client_ip_header` chooses the header a trusted proxy is believed in; the others are
/// not read.
#[tokio::test]
async fn the_client_ip_header_chosen_is_the_one_believed() {
    let upstream = upstream().await;
    for (choice, header, who, another) in [
        ("x-real-ip", "x-real-ip", "198.51.100.1", "198.51.100.2"),
        (
            "forwarded",
            "forwarded",
            "for=198.51.100.1;proto=https",
            "for=\"[2001:db8::1]:4711\"",
        ),
    ] {
        let text = TRUSTING.replace(
            "trusted_proxies =",
            &format!("client_ip_header = \"{choice}\"\ntrusted_proxies ="),
        );
        let proxy = proxy(&text, &upstream).await;
        let trusted = client();
        let first = get_from(&trusted, proxy, "/once", &[(header, who)]).await;
        assert_eq!(first.status, StatusCode::OK, "{choice}");
        // Another X-Forwarded-For, the same client in the header chosen: it has paid.
        let again = [(header, who), ("x-forwarded-for", "203.0.113.5")];
        let second = get_from(&trusted, proxy, "/once", &again).await;
        assert_eq!(second.status, StatusCode::TOO_MANY_REQUESTS, "{choice}");
        let other = get_from(&trusted, proxy, "/once", &[(header, another)]).await;
        assert_eq!(other.status, StatusCode::OK, "{choice}: another client");
    }
}

/// The README's `client_ip_header` example is a configuration that parses as written.
#[test]
fn the_readme_client_ip_header_example_is_valid() {
    let readme = include_str!("../../../../README.md");
    let section = &readme[readme.find("## Proxy semantics").expect("the section")..];
    let start = section.find("```toml\n").expect("a toml block") + "```toml\n".len();
    let block = &section[start..start + section[start..].find("```").expect("its end")];
    let block = block
        .lines()
        .map(str::trim_start)
        .collect::<Vec<_>>()
        .join("\n");
    let config = Config::parse(&block, "README.md").expect("the README's example parses");
    let proxy = config.proxy.expect("a [proxy] section");
    assert_eq!(
        proxy.trusted_proxies.header(),
        tollgate_tower::ProxyHeader::Forwarded
    );
}

#[tokio::test]
async fn host_is_the_upstreams_and_forwarded_proto_and_host_are_believed_from_trusted_peers() {
    let upstream = upstream().await;
    let proxy = proxy(TRUSTING, &upstream).await;
    let claims = [
        ("x-forwarded-proto", "https"),
        ("x-forwarded-host", "shop.example"),
    ];

    let answer = get_from(&untrusted_client(), proxy, "/echo", &claims).await;
    let upstream_host = upstream.addr.to_string();
    assert_eq!(answer.received("host"), Some(upstream_host.clone()));
    assert_eq!(
        answer.received("x-forwarded-proto").as_deref(),
        Some("http")
    );
    assert_eq!(answer.received("x-forwarded-host"), Some(proxy.to_string()));

    let answer = get_from(&client(), proxy, "/echo", &claims).await;
    assert_eq!(answer.received("host"), Some(upstream_host));
    assert_eq!(
        answer.received("x-forwarded-proto").as_deref(),
        Some("https")
    );
    assert_eq!(
        answer.received("x-forwarded-host").as_deref(),
        Some("shop.example")
    );

    let answer = get_from(&client(), proxy, "/echo", &[]).await;
    assert_eq!(
        answer.received("x-forwarded-proto").as_deref(),
        Some("http")
    );
    assert_eq!(answer.received("x-forwarded-host"), Some(proxy.to_string()));
}

#[tokio::test]
async fn hop_by_hop_headers_are_dropped_both_ways() {
    let upstream = upstream().await;
    let proxy = proxy(TRUSTING, &upstream).await;

    // Raw, so that the client sends exactly these fields.
    let mut stream = TcpStream::connect(proxy)
        .await
        .expect("connect to the proxy");
    let request = "POST /echo?q=1 HTTP/1.1\r\n\
        Host: proxy.example\r\n\
        Connection: close, X-Drop-Me\r\n\
        X-Drop-Me: 1\r\n\
        Keep-Alive: timeout=5\r\n\
        Proxy-Authorization: Basic Zm9vOmJhcg==\r\n\
        Proxy-Connection: keep-alive\r\n\
        TE: trailers\r\n\
        Trailer: X-Checksum\r\n\
        Upgrade: h2c\r\n\
        X-Keep-Me: yes\r\n\
        Transfer-Encoding: chunked\r\n\
        \r\n\
        5\r\nhello\r\n6\r\n world\r\n0\r\n\r\n";
    stream
        .write_all(request.as_bytes())
        .await
        .expect("send the request");
    let mut raw = Vec::new();
    tokio::time::timeout(TIMEOUT, stream.read_to_end(&mut raw))
        .await
        .expect("an answer in time")
        .expect("read the answer");
    let raw = String::from_utf8(raw).expect("a text answer");
    let (head, body) = raw.split_once("\r\n\r\n").expect("a head and a body");
    assert!(head.starts_with("HTTP/1.1 200"), "{head}");

    let echoed: Value = serde_json::from_str(body).expect("the upstream's JSON");
    assert_eq!(echoed["uri"], "/echo?q=1");
    assert_eq!(echoed["body_len"], 11);
    let received = echoed["headers"].as_object().expect("headers");
    for dropped in [
        "connection",
        "x-drop-me",
        "keep-alive",
        "proxy-authorization",
        "proxy-connection",
        "te",
        "trailer",
        "upgrade",
    ] {
        assert!(
            !received.contains_key(dropped),
            "{dropped} reached the upstream: {received:?}"
        );
    }
    assert_eq!(received["x-keep-me"], json!(["yes"]));
    assert_eq!(received["host"], json!([upstream.addr.to_string()]));
    assert_eq!(received["x-forwarded-host"], json!(["proxy.example"]));

    let head = head.to_ascii_lowercase();
    for dropped in [
        "x-resp-drop",
        "keep-alive",
        "proxy-authenticate",
        "connection: x-resp-drop",
    ] {
        assert!(
            !head.contains(dropped),
            "{dropped} reached the client: {head}"
        );
    }
    assert!(head.contains("x-resp-keep: yes"), "{head}");
}
