//! The upstream timeouts, against upstreams that misbehave on purpose: one that accepts and
//! never answers, one whose accept queue is full, one that stalls its body, one that is slow
//! but within bounds.

use super::*;

use std::time::Instant;

/// A proxy in front of `upstream` with the given upstream timeouts, and `/once` limited to
/// one request a minute.
async fn proxy_timing_out(upstream: SocketAddr, timeouts: &str) -> SocketAddr {
    let config = format!(
        "[policies.once]\nlimits = \"1/minute\"\n\n\
         [proxy]\nlisten = \"127.0.0.1:0\"\nupstream = \"UPSTREAM\"\n{timeouts}\n\n\
         [[proxy.routes]]\npath = \"/once\"\npolicy = \"once\"\n"
    );
    proxy_with(&config, &format!("http://{upstream}"), HeaderStyle::Both).await
}

/// An upstream that accepts connections, reads what comes, and answers with `answer` (then
/// holds the connection open, silent).
async fn raw_upstream<F, Fut>(answer: F) -> SocketAddr
where
    F: Fn(TcpStream) -> Fut + Send + 'static,
    Fut: std::future::Future<Output = ()> + Send + 'static,
{
    let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind");
    let addr = listener.local_addr().expect("address");
    tokio::spawn(async move {
        while let Ok((stream, _)) = listener.accept().await {
            tokio::spawn(answer(stream));
        }
    });
    addr
}

/// Reads a request head from `stream`.
async fn read_head(stream: &mut TcpStream) {
    let mut head = Vec::new();
    let mut byte = [0; 1];
    while !head.ends_with(b"\r\n\r\n") {
        match stream.read(&mut byte).await {
            Ok(1) => head.push(byte[0]),
            _ => return,
        }
    }
}

fn error_of(answer: &Answer) -> String {
    answer.json()["error"]
        .as_str()
        .expect("an error")
        .to_owned()
}

#[tokio::test]
async fn an_upstream_that_never_answers_is_a_504_and_the_request_stays_charged() {
    let upstream = raw_upstream(|mut stream| async move {
        read_head(&mut stream).await;
        std::future::pending::<()>().await;
    })
    .await;
    let proxy = proxy_timing_out(upstream, "upstream_timeout = \"500ms\"").await;
    let client = client();

    let started = Instant::now();
    let answer = get_from(&client, proxy, "/once", &[]).await;
    let took = started.elapsed();
    assert_eq!(answer.status, StatusCode::GATEWAY_TIMEOUT);
    assert_eq!(answer.header("content-type"), Some("application/json"));
    assert!(
        error_of(&answer).contains("upstream_timeout (500ms)"),
        "{}",
        error_of(&answer)
    );
    assert!(
        took >= Duration::from_millis(450) && took < Duration::from_secs(5),
        "answered after {took:?}"
    );
    // Admitted, so charged: the next request in the minute is refused.
    assert_eq!(
        get_from(&client, proxy, "/once", &[]).await.status,
        StatusCode::TOO_MANY_REQUESTS
    );
}

#[tokio::test]
async fn an_upstream_that_does_not_accept_the_connection_is_a_504() {
    // A listener whose accept queue is full: the kernel drops further connection attempts
    // unanswered, so they wait until given up.
    let socket = tokio::net::TcpSocket::new_v4().expect("a socket");
    socket
        .bind("127.0.0.1:0".parse().expect("an address"))
        .expect("bind");
    let listener = socket.listen(1).expect("listen");
    let upstream = listener.local_addr().expect("address");
    let mut queued = Vec::new();
    loop {
        assert!(queued.len() < 64, "the accept queue never filled");
        let attempt =
            tokio::time::timeout(Duration::from_millis(300), TcpStream::connect(upstream));
        match attempt.await {
            Ok(stream) => queued.push(stream.expect("a connection")),
            Err(_) => break,
        }
    }
    let proxy = proxy_timing_out(
        upstream,
        "upstream_connect_timeout = \"300ms\"\nupstream_timeout = \"10s\"",
    )
    .await;

    let started = Instant::now();
    let answer = get_from(&client(), proxy, "/anything", &[]).await;
    let took = started.elapsed();
    assert_eq!(answer.status, StatusCode::GATEWAY_TIMEOUT);
    assert!(
        error_of(&answer).contains("upstream_connect_timeout (300ms)"),
        "{}",
        error_of(&answer)
    );
    assert!(took < Duration::from_secs(5), "answered after {took:?}");
    drop((queued, listener));
}

#[tokio::test]
async fn an_upstream_body_that_stalls_is_cut_after_the_idle_timeout() {
    let upstream = raw_upstream(|mut stream| async move {
        read_head(&mut stream).await;
        let head = b"HTTP/1.1 200 OK\r\nContent-Length: 100\r\n\r\nthe first part";
        let _ = stream.write_all(head).await;
        std::future::pending::<()>().await;
    })
    .await;
    let proxy = proxy_timing_out(upstream, "upstream_idle_timeout = \"500ms\"").await;

    let request = http::Request::get(format!("http://{proxy}/stalls"))
        .body(Body::empty())
        .expect("a request");
    let response = tokio::time::timeout(TIMEOUT, client().request(request))
        .await
        .expect("a head in time")
        .expect("a head");
    assert_eq!(response.status(), StatusCode::OK);
    let started = Instant::now();
    let mut body = response.into_body();
    let mut received = Vec::new();
    let ended = loop {
        match tokio::time::timeout(TIMEOUT, body.frame()).await {
            Err(_) => panic!("the body neither went on nor ended within {TIMEOUT:?}"),
            Ok(Some(Ok(frame))) => {
                received.extend_from_slice(&frame.into_data().unwrap_or_default())
            }
            Ok(Some(Err(err))) => break err.to_string(),
            Ok(None) => panic!("the body ended as if complete"),
        }
    };
    let took = started.elapsed();
    assert_eq!(received, b"the first part", "{ended}");
    assert!(
        took >= Duration::from_millis(400) && took < Duration::from_secs(5),
        "cut after {took:?}: {ended}"
    );
}

#[tokio::test]
async fn a_slow_upstream_within_its_timeouts_is_answered_whole() {
    let upstream = raw_upstream(|mut stream| async move {
        read_head(&mut stream).await;
        tokio::time::sleep(Duration::from_millis(400)).await;
        let _ = stream
            .write_all(b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n")
            .await;
        for chunk in [
            "5\r\nslow,\r\n",
            "4\r\nbut \r\n",
            "6\r\nwhole.\r\n",
            "0\r\n\r\n",
        ] {
            tokio::time::sleep(Duration::from_millis(400)).await;
            let _ = stream.write_all(chunk.as_bytes()).await;
        }
    })
    .await;
    let proxy = proxy_timing_out(
        upstream,
        "upstream_timeout = \"1s\"\nupstream_idle_timeout = \"1s\"",
    )
    .await;
    let answer = get_from(&client(), proxy, "/slow", &[]).await;
    assert_eq!(answer.status, StatusCode::OK);
    assert_eq!(&answer.body[..], b"slow,but whole.");
}
