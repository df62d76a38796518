//! `[proxy] escaped_slashes`, against nginx as the upstream: nginx decodes `%2F` and resolves
//! dot segments, so `/static/..%2fping` is `/ping` to it.

use super::*;

#[path = "../support/nginx.rs"]
mod nginx;

/// nginx answering each location with its name.
fn nginx_upstream() -> nginx::Nginx {
    nginx::Nginx::start(
        "        location = /ping { return 200 \"ping\"; }\n\
         location /static/ { return 200 \"static\"; }\n\
         location / { return 200 \"other\"; }",
    )
}

/// The lesson with `/static/*` exempt, and `escaped_slashes` as given.
fn lesson_with_static(escaped_slashes: &str) -> String {
    LESSON
        .replace(
            "[[proxy.routes]]\npath = \"/ping\"",
            "[[proxy.routes]]\npath = \"/static/*\"\nexempt = true\n\n[[proxy.routes]]\npath = \"/ping\"",
        )
        .replace(
            "default_policy = \"api\"\n",
            &format!("default_policy = \"api\"\n{escaped_slashes}\n"),
        )
}

fn text(answer: &Answer) -> &str {
    std::str::from_utf8(&answer.body).expect("a text body")
}

#[tokio::test]
async fn decoded_escaped_slashes_meet_the_limit_of_the_path_the_upstream_serves() {
    let nginx = nginx_upstream();
    let client = client();
    // What the upstream makes of the path: /ping, past the exempt prefix the proxy sees.
    let direct = get_from(&client, nginx.addr, "/static/..%2fping", &[]).await;
    assert_eq!(text(&direct), "ping");

    let proxy = proxy_with(
        &lesson_with_static("escaped_slashes = \"decode\""),
        &format!("http://{}", nginx.addr),
        HeaderStyle::Both,
    )
    .await;
    for (path, remaining) in [
        ("/static/..%2fping", "2"),
        ("/static/..%2Fping", "1"),
        ("/static/..%5cping", "0"),
    ] {
        let answer = get_from(&client, proxy, path, &[]).await;
        assert_eq!(answer.status, StatusCode::OK, "{path}");
        assert_eq!(text(&answer), "ping", "{path}");
        assert_eq!(
            answer.header("ratelimit-policy"),
            Some(r#""login";q=3;w=60"#)
        );
        assert_eq!(
            answer.header("x-ratelimit-remaining"),
            Some(remaining),
            "{path}"
        );
    }
    for path in ["/static/..\\ping", "/ping", "/static/..%2fping"] {
        let answer = get_from(&client, proxy, path, &[]).await;
        assert_eq!(answer.status, StatusCode::TOO_MANY_REQUESTS, "{path}");
    }
    // What stays under the prefix is still exempt.
    let answer = get_from(&client, proxy, "/static%2Fapp.js", &[]).await;
    assert_eq!((answer.status, text(&answer)), (StatusCode::OK, "static"));
    assert_eq!(answer.header("x-ratelimit-limit"), None);
}

#[tokio::test]
async fn rejected_escaped_slashes_and_backslashes_never_reach_the_upstream() {
    let nginx = nginx_upstream();
    let client = client();
    for config in [
        lesson_with_static(""),
        lesson_with_static("escaped_slashes = \"reject\""),
    ] {
        let proxy = proxy_with(
            &config,
            &format!("http://{}", nginx.addr),
            HeaderStyle::Both,
        )
        .await;
        for path in [
            "/static/..%2fping",
            "/static/..%2Fping",
            "/static/..%5cping",
            "/static/..%5Cping",
            "/static/..\\ping",
        ] {
            let answer = get_from(&client, proxy, path, &[]).await;
            assert_eq!(answer.status, StatusCode::BAD_REQUEST, "{path}");
            assert!(
                answer.json()["error"]
                    .as_str()
                    .is_some_and(|error| error.contains("encoded slash or backslash")),
                "{path}"
            );
        }
        let answer = get_from(&client, proxy, "/static/../ping", &[]).await;
        assert_eq!(text(&answer), "ping");
        assert_eq!(answer.header("x-ratelimit-limit"), Some("3"));
    }
}

/// `%%32%46` and `%2%66` are no `%2F` to the proxy, but were once its unreserved escapes were
/// decoded (`%32` is `2`, `%46` is `F`): nginx then read `/static/..%2Fping` as `/ping`, past
/// the exempt prefix. Malformed escapes (and `%00`) are refused, in either mode, as nginx
/// itself refuses them; so are dot segments with parameters (`..;`), a dot segment to Java
/// servers.
#[tokio::test]
async fn malformed_escapes_and_dot_segments_with_parameters_never_reach_the_upstream() {
    let nginx = nginx_upstream();
    let client = client();
    for config in [
        lesson_with_static(""),
        lesson_with_static("escaped_slashes = \"decode\""),
    ] {
        let proxy = proxy_with(
            &config,
            &format!("http://{}", nginx.addr),
            HeaderStyle::Both,
        )
        .await;
        for _ in 0..3 {
            assert_eq!(
                get_from(&client, proxy, "/ping", &[]).await.status,
                StatusCode::OK
            );
        }
        assert_eq!(
            get_from(&client, proxy, "/ping", &[]).await.status,
            StatusCode::TOO_MANY_REQUESTS
        );
        for (path, error) in [
            ("/static/..%%32%46ping", "malformed escape"),
            ("/static/..%2%66ping", "malformed escape"),
            ("/static/..%%35%63ping", "malformed escape"),
            ("/static/app%00.js", "malformed escape"),
            ("/static/..;/ping", "dot segment with parameters"),
            ("/static/%2e%2e;x/ping", "dot segment with parameters"),
        ] {
            let answer = get_from(&client, proxy, path, &[]).await;
            assert_eq!(
                answer.status,
                StatusCode::BAD_REQUEST,
                "{path}: {:?}",
                String::from_utf8_lossy(&answer.body)
            );
            assert!(
                answer.json()["error"]
                    .as_str()
                    .is_some_and(|message| message.contains(error)),
                "{path}"
            );
        }
        // What stays under the prefix is still exempt and served.
        let answer = get_from(&client, proxy, "/static/%61pp.js", &[]).await;
        assert_eq!((answer.status, text(&answer)), (StatusCode::OK, "static"));
    }
}
