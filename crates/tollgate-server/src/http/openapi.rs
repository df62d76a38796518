//! `GET /openapi.json`: the OpenAPI 3.1 document of the check API, kept by hand in
//! `crates/tollgate-server/openapi.json` and built into the binary. The `openapi` tests check
//! the live server against it (schemathesis), every route the source mounts and every field
//! the request bodies take against it: a new endpoint or field fails them until it is
//! described there.

use std::sync::OnceLock;

use axum::http::{HeaderValue, header};
use axum::response::{IntoResponse, Response};

/// The OpenAPI 3.1 document of the HTTP API (`/v1/check`, `/v1/peek`, `/v1/charge`,
/// `/v1/reset`, the probes, `/metrics` and itself), as served at `GET /openapi.json`.
///
/// ```
/// let spec: serde_json::Value = serde_json::from_str(tollgate_server::OPENAPI_JSON)?;
/// assert_eq!(spec["openapi"], "3.1.0");
/// assert!(spec["paths"]["/v1/check"]["post"]["responses"]["429"].is_object());
/// # Ok::<(), serde_json::Error>(())
/// ```
pub const OPENAPI_JSON: &str = include_str!("../../openapi.json");

/// The document, as `application/json`.
pub(crate) async fn openapi() -> Response {
    (
        [(
            header::CONTENT_TYPE,
            HeaderValue::from_static("application/json"),
        )],
        OPENAPI_JSON,
    )
        .into_response()
}

/// The operations the document describes, `POST /v1/check, ..., GET /openapi.json`, for the
/// message that answers a path the API does not have.
pub(crate) fn operations() -> &'static str {
    static OPERATIONS: OnceLock<String> = OnceLock::new();
    OPERATIONS.get_or_init(|| {
        let spec: serde_json::Value = serde_json::from_str(OPENAPI_JSON).unwrap_or_default();
        let mut operations = Vec::new();
        for (path, item) in spec["paths"].as_object().into_iter().flatten() {
            for method in ["get", "post", "put", "patch", "delete"] {
                if item.get(method).is_some() {
                    operations.push(format!("{} {path}", method.to_uppercase()));
                }
            }
        }
        operations.join(", ")
    })
}

#[cfg(test)]
mod tests {
    #[test]
    fn the_operations_are_listed_from_the_document() {
        let operations = super::operations();
        for operation in [
            "POST /v1/check",
            "POST /v1/reset",
            "GET /livez",
            "GET /openapi.json",
            "GET /dashboard",
        ] {
            assert!(operations.contains(operation), "{operations}");
        }
        assert_eq!(operations.split(", ").count(), 13, "{operations}");
    }
}
