//! Bodies streamed both ways, header styles, and an unreachable upstream.

use super::*;

#[tokio::test]
async fn multi_megabyte_bodies_stream_both_ways() {
    let upstream = upstream().await;
    let proxy = proxy(TRUSTING, &upstream).await;
    let client = client();

    // 8 MiB up, made chunk by chunk, without a length.
    let chunks = (0..128).map(|_| Ok::<_, Infallible>(Bytes::from(vec![b'u'; 64 * 1024])));
    let body = Body::from_stream(futures_util::stream::iter(chunks));
    let answer = send(
        &client,
        Method::PUT,
        format!("http://{proxy}/upload"),
        &[],
        body,
    )
    .await;
    assert_eq!(answer.status, StatusCode::OK);
    assert_eq!(answer.json()["body_len"], 8 * MIB);

    // 16 MiB down, counted as it streams.
    let request = http::Request::get(format!("http://{proxy}/big?bytes={}", 16 * MIB))
        .body(Body::empty())
        .expect("a valid request");
    let response = client.request(request).await.expect("a response");
    assert_eq!(response.status(), StatusCode::OK);
    let mut body = response.into_body();
    let mut len = 0;
    while let Some(frame) = tokio::time::timeout(TIMEOUT, body.frame())
        .await
        .expect("in time")
    {
        if let Ok(data) = frame.expect("a frame").into_data() {
            len += data.len();
        }
    }
    assert_eq!(len, 16 * MIB);
}

#[tokio::test]
async fn response_bodies_are_not_buffered() {
    let upstream = upstream().await;
    let proxy = proxy(TRUSTING, &upstream).await;

    let request = http::Request::get(format!("http://{proxy}/gated"))
        .body(Body::empty())
        .expect("a valid request");
    let response = tokio::time::timeout(TIMEOUT, client().request(request))
        .await
        .expect("headers before the body has ended")
        .expect("a response");
    let mut body = response.into_body();
    let first = tokio::time::timeout(TIMEOUT, body.frame())
        .await
        .expect("the first chunk before the body has ended")
        .expect("a frame")
        .expect("a good frame")
        .into_data()
        .expect("data");
    assert_eq!(&first[..], b"first");
    upstream.state.open_gate.notify_one();
    let rest = tokio::time::timeout(TIMEOUT, body.collect())
        .await
        .expect("the rest in time")
        .expect("the rest")
        .to_bytes();
    assert_eq!(&rest[..], b"rest");
}

#[tokio::test]
async fn request_bodies_are_not_buffered() {
    let upstream = upstream().await;
    let proxy = proxy(TRUSTING, &upstream).await;

    let (tx, rx) = mpsc::channel(1);
    let request = http::Request::post(format!("http://{proxy}/upload-gated"))
        .body(channel_body(rx))
        .expect("a valid request");
    let client = client();
    let response = tokio::spawn(async move { client.request(request).await });
    tx.send(Bytes::from(vec![b'a'; 1000]))
        .await
        .expect("send the first chunk");
    tokio::time::timeout(TIMEOUT, upstream.state.first_chunk.notified())
        .await
        .expect("the upstream got the first chunk while the body goes on");
    tx.send(Bytes::from(vec![b'b'; 24]))
        .await
        .expect("send the rest");
    drop(tx);
    let response = tokio::time::timeout(TIMEOUT, response)
        .await
        .expect("an answer in time")
        .expect("the request task")
        .expect("a response");
    assert_eq!(response.status(), StatusCode::OK);
    let body = response
        .into_body()
        .collect()
        .await
        .expect("a body")
        .to_bytes();
    assert_eq!(&body[..], b"1024");
}

#[tokio::test]
async fn header_style_none_leaves_only_retry_after() {
    let upstream = upstream().await;
    let proxy = proxy_with(
        TRUSTING,
        &format!("http://{}", upstream.addr),
        HeaderStyle::None,
    )
    .await;
    let client = client();
    let allowed = get_from(&client, proxy, "/once", &[]).await;
    assert_eq!(allowed.status, StatusCode::OK);
    let denied = get_from(&client, proxy, "/once", &[]).await;
    assert_eq!(denied.status, StatusCode::TOO_MANY_REQUESTS);
    for answer in [&allowed, &denied] {
        for name in [
            "x-ratelimit-limit",
            "x-ratelimit-remaining",
            "ratelimit",
            "ratelimit-policy",
        ] {
            assert_eq!(answer.header(name), None, "{name}");
        }
    }
    assert!(denied.header("retry-after").is_some());
}

#[tokio::test]
async fn an_unreachable_upstream_is_a_502_and_limits_still_hold() {
    // A port nothing listens on.
    let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind");
    let free = listener.local_addr().expect("address");
    drop(listener);
    let proxy = proxy_with(TRUSTING, &format!("http://{free}"), HeaderStyle::Both).await;
    let client = client();

    let answer = get_from(&client, proxy, "/anything", &[]).await;
    assert_eq!(answer.status, StatusCode::BAD_GATEWAY);
    assert_eq!(answer.header("content-type"), Some("application/json"));
    let error = answer.json()["error"]
        .as_str()
        .expect("an error")
        .to_owned();
    assert!(error.starts_with("upstream unreachable: "), "{error}");
    assert!(error.to_ascii_lowercase().contains("refused"), "{error}");

    assert_eq!(
        get_from(&client, proxy, "/once", &[]).await.status,
        StatusCode::BAD_GATEWAY
    );
    assert_eq!(
        get_from(&client, proxy, "/once", &[]).await.status,
        StatusCode::TOO_MANY_REQUESTS
    );
}
