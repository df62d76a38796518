//! Every route mounted is in the spec, with exactly the methods it takes; every operation
//! in the spec is served; the spec is served as it is in the repository.

use std::path::Path;
use std::sync::Arc;

use axum::Router;
use axum::body::Body;
use http::{Method, Request, StatusCode};
use http_body_util::BodyExt;
use serde_json::Value;
use tollgate_server::{Config, OPENAPI_JSON, ServerState, check_api_router};
use tower::ServiceExt;

const METHODS: [&str; 5] = ["get", "post", "put", "delete", "patch"];

async fn router() -> Router {
    let config = Config::parse(
        "[server]\nadmin_token = \"s3cret\"\n[policies.login]\nlimits = \"2/minute\"\n",
        "tollgate.toml",
    )
    .expect("a valid config");
    let store = config.storage.open().await.expect("memory storage opens");
    check_api_router(Arc::new(ServerState::new(&config, store).expect("state")))
}

fn spec() -> Value {
    serde_json::from_str(OPENAPI_JSON).expect("openapi.json is JSON")
}

/// The spec's operations: (path, lowercase method).
fn operations(spec: &Value) -> Vec<(String, String)> {
    let paths = spec["paths"].as_object().expect("paths");
    let mut operations = Vec::new();
    for (path, item) in paths {
        for method in METHODS {
            if item.get(method).is_some() {
                operations.push((path.clone(), method.to_owned()));
            }
        }
    }
    operations
}

/// Sends `method path` with an empty JSON object: the status and the body.
async fn send(router: &Router, method: &str, path: &str) -> (StatusCode, String) {
    let method = Method::from_bytes(method.to_uppercase().as_bytes()).expect("a method");
    let request = Request::builder()
        .method(method)
        .uri(path)
        .header("content-type", "application/json")
        .body(Body::from("{}"))
        .expect("a request");
    let response = router.clone().oneshot(request).await.expect("infallible");
    let status = response.status();
    let body = response
        .into_body()
        .collect()
        .await
        .expect("a body")
        .to_bytes();
    (status, String::from_utf8_lossy(&body).into_owned())
}

#[tokio::test]
async fn every_operation_in_the_spec_is_served_and_no_other_method() {
    let router = router().await;
    let spec = spec();
    let operations = operations(&spec);
    assert!(operations.len() >= 9, "{operations:?}");
    for (path, method) in &operations {
        let (status, body) = send(&router, method, path).await;
        assert!(
            !body.contains("no such endpoint") && status != StatusCode::METHOD_NOT_ALLOWED,
            "the spec has {method} {path}, the router answers {status} {body}"
        );
        let documented = spec["paths"][path][method]["responses"]
            .get(status.as_str())
            .is_some();
        assert!(
            documented,
            "{method} {path} answered {status}, not in the spec: {body}"
        );
    }
    for path in spec["paths"].as_object().expect("paths").keys() {
        for method in METHODS {
            if spec["paths"][path].get(method).is_none() {
                let (status, body) = send(&router, method, path).await;
                assert_eq!(
                    status,
                    StatusCode::METHOD_NOT_ALLOWED,
                    "{path} takes {method} ({body}) but the spec does not say so"
                );
            }
        }
    }
}

/// The paths the server's source mounts (`.route("/...", ...)`, `.route_service`, `.nest`):
/// a new endpoint without its place in the spec fails here.
#[test]
fn every_route_in_the_source_is_in_the_spec() {
    let spec = spec();
    let mut mounted = Vec::new();
    collect_routes(
        &Path::new(env!("CARGO_MANIFEST_DIR")).join("src"),
        &mut mounted,
    );
    for expected in ["/v1/check", "/v1/reset", "/openapi.json"] {
        assert!(
            mounted.iter().any(|(path, _)| path == expected),
            "the scan of the source misses {expected}: {mounted:?}"
        );
    }
    for (path, file) in &mounted {
        assert!(
            spec["paths"].get(path).is_some(),
            "{file} mounts {path}, which crates/tollgate-server/openapi.json does not describe"
        );
    }
}

/// The literal paths of `.route(`, `.route_service(` and `.nest(` calls under `dir`.
fn collect_routes(dir: &Path, mounted: &mut Vec<(String, String)>) {
    for entry in std::fs::read_dir(dir).expect("read src") {
        let path = entry.expect("an entry").path();
        if path.is_dir() {
            collect_routes(&path, mounted);
            continue;
        }
        if path.extension().is_none_or(|ext| ext != "rs") {
            continue;
        }
        let text = std::fs::read_to_string(&path).expect("read a source file");
        for call in [".route(\"", ".route_service(\"", ".nest(\""] {
            for (at, _) in text.match_indices(call) {
                let rest = &text[at + call.len()..];
                let route = rest.split('"').next().unwrap_or_default();
                // Doc examples build their own routers.
                let line_start = text[..at].rfind('\n').map_or(0, |n| n + 1);
                if text[line_start..at].trim_start().starts_with("//") {
                    continue;
                }
                mounted.push((route.to_owned(), path.display().to_string()));
            }
        }
    }
}

#[tokio::test]
async fn the_spec_is_served_as_json() {
    let router = router().await;
    let request = Request::get("/openapi.json")
        .body(Body::empty())
        .expect("a request");
    let response = router.oneshot(request).await.expect("infallible");
    assert_eq!(response.status(), StatusCode::OK);
    assert_eq!(response.headers()["content-type"], "application/json");
    let body = response
        .into_body()
        .collect()
        .await
        .expect("a body")
        .to_bytes();
    let file = std::fs::read(Path::new(env!("CARGO_MANIFEST_DIR")).join("openapi.json"))
        .expect("the spec file");
    assert_eq!(body.as_ref(), file.as_slice());
    assert_eq!(spec()["openapi"], "3.1.0");
}

/// The fields the server takes in a request body are the spec's: serde names them all when
/// it refuses an unknown one.
#[tokio::test]
async fn request_fields_are_the_specs() {
    let router = router().await;
    let request = Request::post("/v1/check")
        .body(Body::from(r#"{"bogus": 1, "key": "k"}"#))
        .expect("a request");
    let response = router.oneshot(request).await.expect("infallible");
    assert_eq!(response.status(), StatusCode::BAD_REQUEST);
    let body = response
        .into_body()
        .collect()
        .await
        .expect("a body")
        .to_bytes();
    let error: Value = serde_json::from_slice(&body).expect("JSON");
    let error = error["error"].as_str().expect("an error");
    let expected = error
        .split_once("expected one of ")
        .unwrap_or_else(|| panic!("no field list in {error:?}"))
        .1;
    let mut taken: Vec<&str> = expected
        .split(", ")
        .map(|field| field.split('`').nth(1).expect("a quoted field"))
        .collect();
    taken.sort_unstable();
    let spec = spec();
    for request in ["NamedPolicyRequest", "InlinePolicyRequest"] {
        let properties = spec["components"]["schemas"][request]["properties"]
            .as_object()
            .expect("properties");
        let mut described: Vec<&str> = properties.keys().map(String::as_str).collect();
        described.sort_unstable();
        assert_eq!(
            described, taken,
            "{request}'s properties and the server's fields"
        );
    }
}
