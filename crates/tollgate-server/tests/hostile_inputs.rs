//! Arbitrary input never panics the server and every refusal says what and where: check API
//! bodies (always a JSON answer with a 2xx, 400, 404 or 429 status), the TOML configuration
//! and the Envoy YAML (an error names the file and, when it is about a place in it, a line
//! that exists).

use std::sync::Arc;

use axum::Router;
use axum::body::Body;
use http::Request;
use http_body_util::BodyExt;
use proptest::prelude::*;
use serde_json::Value;
use tollgate_server::{Config, EnvoyConfig, ServerState, check_api_router};
use tower::ServiceExt;

/// Pieces of plausible and implausible JSON, joined at random.
const JSON_PIECES: &[&str] = &[
    "{",
    "}",
    "[",
    "]",
    ",",
    ":",
    "\"policy\"",
    "\"limits\"",
    "\"strategy\"",
    "\"burst\"",
    "\"key\"",
    "\"cost\"",
    "\"login\"",
    "\"nope\"",
    "\"5/minute\"",
    "\"1/584 years\"",
    "\"1000000000000/second\"",
    "\"token-bucket\"",
    "\"sliding-window\"",
    "\"gcra\"",
    "0",
    "1",
    "-1",
    "18446744073709551615",
    "18446744073709551616",
    "1e400",
    "null",
    "true",
    "\"\"",
    "\"\\u0000\"",
    "\"\\ud800\"",
    " ",
    "\n",
];

/// A body built from [`JSON_PIECES`], often as an object of plausible fields.
fn json_body() -> impl Strategy<Value = Vec<u8>> {
    let pieces = proptest::collection::vec(proptest::sample::select(JSON_PIECES), 0..24)
        .prop_map(|pieces| pieces.concat().into_bytes());
    let field = (
        proptest::sample::select(&JSON_PIECES[6..12]),
        proptest::sample::select(&JSON_PIECES[12..]),
    )
        .prop_map(|(name, value)| format!("{name}: {value}"));
    let object = proptest::collection::vec(field, 0..7)
        .prop_map(|fields| format!("{{{}}}", fields.join(", ")).into_bytes());
    prop_oneof![
        2 => object,
        1 => pieces,
        1 => proptest::collection::vec(any::<u8>(), 0..64),
    ]
}

fn router(runtime: &tokio::runtime::Runtime) -> Router {
    let config = Config::parse(
        "[server]\nadmin_token = \"t\"\n[policies.login]\nlimits = \"2/minute\"\n",
        "tollgate.toml",
    )
    .expect("a valid config");
    let store = runtime
        .block_on(config.storage.open())
        .expect("memory storage opens");
    check_api_router(Arc::new(ServerState::new(&config, store).expect("state")))
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(256))]

    #[test]
    fn any_check_api_body_gets_a_json_answer(body in json_body(), path in 0..3usize) {
        thread_local! {
            static RUNTIME: tokio::runtime::Runtime = tokio::runtime::Builder::new_current_thread()
                .build()
                .expect("a runtime");
        }
        RUNTIME.with(|runtime| {
            let router = router(runtime);
            let path = ["/v1/check", "/v1/peek", "/v1/reset"][path];
            let request = Request::post(path)
                .header("authorization", "Bearer t")
                .body(Body::from(body.clone()))
                .expect("a request");
            let (status, value) = runtime.block_on(async {
                let response = router.oneshot(request).await.expect("infallible");
                let status = response.status();
                let bytes = response.into_body().collect().await.expect("a body").to_bytes();
                (status, serde_json::from_slice::<Value>(&bytes))
            });
            let text = String::from_utf8_lossy(&body);
            prop_assert!(
                [200, 400, 404, 429].contains(&status.as_u16()),
                "{path} {text:?}: {status}"
            );
            let value = value.map_err(|err| {
                TestCaseError::fail(format!("{path} {text:?}: not JSON: {err}"))
            })?;
            if !status.is_success() && status != 429 {
                prop_assert!(value["error"].is_string(), "{path} {text:?}: {value}");
            }
            Ok(())
        })?;
    }
}

/// Lines of plausible and broken configuration, joined at random.
const TOML_LINES: &[&str] = &[
    "[server]",
    "[policies.login]",
    "[policies.\"a b\"]",
    "[proxy]",
    "[[proxy.routes]]",
    "[envoy]",
    "listen = \"127.0.0.1:0\"",
    "listen = \"nowhere\"",
    "grpc_listen = \"127.0.0.1:0\"",
    "storage = \"memory\"",
    "storage = \"mongodb://x\"",
    "storage = \"redis://127.0.0.1:1\"",
    "on_storage_error = \"fallback\"",
    "on_storage_error = \"maybe\"",
    "headers = \"ietf\"",
    "headers = 3",
    "admin_token = \"\"",
    "limits = \"5/minute\"",
    "limits = \"5/minit\"",
    "limits = \"\"",
    "limits = \"18446744073709551615/second\"",
    "strategy = \"token-bucket\"",
    "strategy = \"nope\"",
    "burst = 0",
    "burst = -1",
    "upstream = \"http://127.0.0.1:1\"",
    "upstream = \"ftp://x\"",
    "path = \"/login\"",
    "path = \"/static/*\"",
    "path = \"login\"",
    "policy = \"login\"",
    "policy = \"nope\"",
    "exempt = true",
    "key = \"ip\"",
    "key = \"header:\"",
    "trusted_proxies = [\"10.0.0.0/8\"]",
    "trusted_proxies = [\"10.0.0.0/33\"]",
    "config = \"/nonexistent.yaml\"",
    "unknown = 1",
    "= 1",
    "[",
    "\"",
    "",
];

proptest! {
    #![proptest_config(ProptestConfig::with_cases(512))]

    #[test]
    fn any_toml_is_a_config_or_an_error_that_says_where(
        lines in proptest::collection::vec(proptest::sample::select(TOML_LINES), 0..16)
    ) {
        let text = lines.join("\n");
        if let Err(err) = Config::parse(&text, "tollgate.toml") {
            prop_assert_eq!(err.file(), "tollgate.toml");
            prop_assert!(!err.message().is_empty(), "{text:?}");
            prop_assert!(err.to_string().starts_with("tollgate.toml"), "{err}");
            if let Some(line) = err.line() {
                prop_assert!((1..=lines.len().max(1)).contains(&line), "{text:?}: {err}");
            }
        }
    }
}

/// Lines of plausible and broken Envoy descriptor configuration, joined at random.
const YAML_LINES: &[&str] = &[
    "domain: edge",
    "domain: \"\"",
    "descriptors:",
    "  - key: remote_address",
    "  - key: user",
    "    value: acme",
    "    rate_limit:",
    "      unit: minute",
    "      unit: fortnight",
    "      requests_per_unit: 60",
    "      requests_per_unit: -1",
    "      requests_per_unit: 18446744073709551616",
    "      strategy: token-bucket",
    "      strategy: nope",
    "      burst: 20",
    "      unlimited: true",
    "      replaces:",
    "        - name: per_ip",
    "      name: per_ip",
    "    shadow_mode: true",
    "    descriptors:",
    "      - key: path",
    "- a",
    "key: [",
    ": :",
    "\t",
    "",
];

proptest! {
    #![proptest_config(ProptestConfig::with_cases(512))]

    #[test]
    fn any_envoy_yaml_is_a_config_or_an_error_that_says_where(
        lines in proptest::collection::vec(proptest::sample::select(YAML_LINES), 0..16)
    ) {
        let text = lines.join("\n");
        if let Err(err) = EnvoyConfig::from_yaml(&text, "ratelimit.yaml") {
            prop_assert_eq!(err.file(), "ratelimit.yaml");
            prop_assert!(!err.message().is_empty(), "{text:?}");
            if let Some(line) = err.line() {
                prop_assert!((1..=lines.len().max(1)).contains(&line), "{text:?}: {err}");
            }
        }
    }
}
