//! Answers a client can rely on: every error of the check API is JSON `{"error": ...}`
//! (unknown paths, wrong methods, bodies too large, arrays for objects), the bearer scheme
//! in any case, and `/metrics` served as what it is, counting hits and not peeks or mistakes;
//! policies outside the bounds refused with the field at fault; escaped names and keys read
//! as the text they stand for.

use std::sync::Arc;

use axum::Router;
use axum::body::Body;
use http::{Request, StatusCode};
use http_body_util::BodyExt;
use serde_json::Value;
use tollgate_server::{Config, ServerState, check_api_router};
use tower::ServiceExt;

const CONFIG: &str = r#"
[server]
admin_token = "s3cret"

[policies.login]
limits = "2/minute"
"#;

async fn router() -> Router {
    let config = Config::parse(CONFIG, "tollgate.toml").expect("a valid config");
    let store = config.storage.open().await.expect("memory storage opens");
    let state = ServerState::new(&config, store).expect("state");
    check_api_router(Arc::new(state))
}

/// Sends `request`: the status, the content type and the body as text.
async fn send(router: &Router, request: Request<Body>) -> (StatusCode, String, String) {
    let response = router.clone().oneshot(request).await.expect("infallible");
    let status = response.status();
    let content_type = response
        .headers()
        .get(http::header::CONTENT_TYPE)
        .and_then(|value| value.to_str().ok())
        .unwrap_or_default()
        .to_owned();
    let bytes = response
        .into_body()
        .collect()
        .await
        .expect("a body")
        .to_bytes();
    (
        status,
        content_type,
        String::from_utf8(bytes.to_vec()).expect("utf-8"),
    )
}

fn post(path: &str, body: impl Into<Body>) -> Request<Body> {
    Request::post(path)
        .header("content-type", "application/json")
        .body(body.into())
        .expect("a request")
}

/// The `"error"` of a JSON error body, after checking that it is one.
fn error_of(content_type: &str, body: &str) -> String {
    assert_eq!(content_type, "application/json", "{body}");
    let value: Value = serde_json::from_str(body).expect("a JSON body");
    value["error"]
        .as_str()
        .unwrap_or_else(|| panic!("no \"error\" in {body}"))
        .to_owned()
}

#[tokio::test]
async fn unknown_paths_and_wrong_methods_answer_json() {
    let router = router().await;
    let get = |path: &str| Request::get(path).body(Body::empty()).expect("a request");

    let (status, content_type, body) = send(&router, get("/v2/check")).await;
    assert_eq!(status, StatusCode::NOT_FOUND);
    assert!(
        error_of(&content_type, &body).contains("/v2/check"),
        "{body}"
    );

    let (status, content_type, body) = send(&router, get("/v1/check")).await;
    assert_eq!(status, StatusCode::METHOD_NOT_ALLOWED);
    assert!(error_of(&content_type, &body).contains("GET"), "{body}");

    let (status, content_type, body) = send(&router, post("/healthz", "{}")).await;
    assert_eq!(status, StatusCode::METHOD_NOT_ALLOWED);
    error_of(&content_type, &body);
}

#[tokio::test]
async fn a_body_too_large_answers_413_json() {
    let router = router().await;
    let key = "k".repeat(3 << 20);
    let body = format!(r#"{{"policy": "login", "key": "{key}"}}"#);
    for path in ["/v1/check", "/v1/peek", "/v1/reset"] {
        let request = Request::post(path)
            .header("authorization", "Bearer s3cret")
            .body(Body::from(body.clone()))
            .expect("a request");
        let (status, content_type, text) = send(&router, request).await;
        assert_eq!(status, StatusCode::PAYLOAD_TOO_LARGE, "{path}");
        assert!(
            error_of(&content_type, &text).contains("request body"),
            "{text}"
        );
    }
}

#[tokio::test]
async fn arrays_are_not_taken_for_objects() {
    let router = router().await;
    // serde would read this as the struct's fields in order: policy, limits, ..., key.
    for body in [
        r#"["login", null, null, null, "user:42", 1]"#,
        r#"  ["login"]"#,
        "null",
        "\"login\"",
    ] {
        let (status, content_type, text) = send(&router, post("/v1/check", body)).await;
        assert_eq!(status, StatusCode::BAD_REQUEST, "{body}");
        assert!(
            error_of(&content_type, &text).contains("expected a JSON object"),
            "{body}: {text}"
        );
    }
    let object = "\n {\"policy\": \"login\", \"key\": \"user:42\"}";
    assert_eq!(
        send(&router, post("/v1/check", object)).await.0,
        StatusCode::OK
    );
}

#[tokio::test]
async fn the_bearer_scheme_matches_in_any_case() {
    let router = router().await;
    let reset = |authorization: &str| {
        Request::post("/v1/reset")
            .header("authorization", authorization)
            .body(Body::from(r#"{"policy": "login", "key": "user:42"}"#))
            .expect("a request")
    };
    for accepted in [
        "Bearer s3cret",
        "bearer s3cret",
        "BEARER  s3cret",
        " Bearer s3cret ",
    ] {
        let (status, _, body) = send(&router, reset(accepted)).await;
        assert_eq!(status, StatusCode::OK, "{accepted:?}: {body}");
    }
    for refused in [
        "Basic s3cret",
        "Bearer s3cre",
        "Bearers3cret",
        "s3cret",
        "Bearer",
    ] {
        let (status, content_type, body) = send(&router, reset(refused)).await;
        assert_eq!(status, StatusCode::UNAUTHORIZED, "{refused:?}");
        error_of(&content_type, &body);
    }
}

#[tokio::test]
async fn metrics_count_hits_not_peeks_or_mistakes() {
    let router = router().await;
    let login = r#"{"policy": "login", "key": "user:42"}"#;
    for _ in 0..3 {
        assert_eq!(
            send(&router, post("/v1/peek", login)).await.0,
            StatusCode::OK
        );
    }
    assert_eq!(
        send(&router, post("/v1/check", login)).await.0,
        StatusCode::OK
    );
    let too_costly = r#"{"policy": "login", "key": "user:42", "cost": 3}"#;
    assert_eq!(
        send(&router, post("/v1/check", too_costly)).await.0,
        StatusCode::BAD_REQUEST
    );

    let metrics = Request::get("/metrics")
        .body(Body::empty())
        .expect("a request");
    let (status, content_type, text) = send(&router, metrics).await;
    assert_eq!(status, StatusCode::OK);
    // What prometheus-client writes is OpenMetrics text: it ends so, and says so.
    assert!(text.ends_with("# EOF\n"), "{text}");
    assert!(
        content_type.starts_with("application/openmetrics-text; version=1.0.0"),
        "{content_type}"
    );
    for (outcome, count) in [("allowed", 1), ("denied", 0), ("error", 0), ("invalid", 1)] {
        let line = format!(r#"tollgate_hits_total{{policy="login",outcome="{outcome}"}} {count}"#);
        assert!(text.lines().any(|l| l == line), "no {line:?} in\n{text}");
    }
    assert!(
        text.contains("tollgate_check_duration_seconds_count 2"),
        "{text}"
    );
}

#[tokio::test]
async fn an_inline_policy_holds_at_most_sixteen_rates() {
    let router = router().await;
    let rates = |n: usize| vec!["1000/second"; n].join("; ");
    let body = |n: usize| format!(r#"{{"limits": "{}", "key": "k"}}"#, rates(n));
    assert_eq!(
        send(&router, post("/v1/check", body(16))).await.0,
        StatusCode::OK
    );
    // 10,000 rates per hit once made each key cost megabytes.
    for n in [17, 10_000] {
        let (status, content_type, text) = send(&router, post("/v1/check", body(n))).await;
        assert_eq!(status, StatusCode::BAD_REQUEST, "{n} rates");
        assert!(
            error_of(&content_type, &text).contains("more than 16 rates in one limit"),
            "{text}"
        );
    }
}

/// Policies outside the bounds every store shares are refused with what is wrong and which
/// field holds it: a too-fast token bucket is a mistake in `limits`, not in `burst`, in an
/// inline policy as in the configuration file.
#[tokio::test]
async fn policies_outside_the_bounds_name_the_field_at_fault() {
    let router = router().await;
    for (body, expected) in [
        (
            r#"{"limits": "2000000/second", "strategy": "token-bucket", "key": "k"}"#,
            "limits: token bucket rate 2000000/second refills faster than 1000000 units per second",
        ),
        (
            r#"{"limits": "1/second", "strategy": "token-bucket", "burst": 5000000000, "key": "k"}"#,
            "burst: burst 5000000000 at 1/second takes longer than 100 years",
        ),
        (
            r#"{"limits": "18446744073709551615/second", "key": "k"}"#,
            "amount 18446744073709551615 is above the maximum 1000000000000",
        ),
        (
            r#"{"limits": "5000/hour", "strategy": "sliding-window", "key": "k"}"#,
            "limits: sliding window log rate 5000/hour counts more than 1000 per window",
        ),
    ] {
        let (status, content_type, text) = send(&router, post("/v1/check", body)).await;
        assert_eq!(status, StatusCode::BAD_REQUEST, "{body}");
        let error = error_of(&content_type, &text);
        assert!(error.contains(expected), "{body}: {error}");
    }
    let file = "[policies.fast]\nlimits = \"2000000/second\"\nstrategy = \"token-bucket\"\n";
    let err = Config::parse(file, "tollgate.toml").expect_err("too fast");
    assert_eq!(
        (err.line(), err.field()),
        (Some(2), Some("policies.fast.limits"))
    );
}

/// The policy's name and the key are read without copying when they hold no escapes; with
/// escapes they are the text they stand for: both spellings share one count.
#[tokio::test]
async fn escaped_names_and_keys_are_the_text_they_stand_for() {
    let router = router().await;
    let plain = r#"{"policy": "login", "key": "user:42"}"#;
    let escaped = r#"{"policy": "lo\u0067in", "key": "user\u003a42"}"#;
    for (body, remaining) in [(plain, 1), (escaped, 0)] {
        let (status, _, answer) = send(&router, post("/v1/check", body)).await;
        assert_eq!(status, StatusCode::OK, "{answer}");
        let answer: Value = serde_json::from_str(&answer).expect("JSON");
        assert_eq!(answer["remaining"], remaining, "{body}: {answer}");
    }
    let (status, _, answer) = send(&router, post("/v1/check", escaped)).await;
    assert_eq!(status, StatusCode::TOO_MANY_REQUESTS, "{answer}");
}
