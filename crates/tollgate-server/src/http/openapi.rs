//! `GET /openapi.json`: the OpenAPI 3.1 document of the check API, kept by hand in
//! `crates/tollgate-server/openapi.json` and built into the binary. The `openapi` tests check
//! the live server against it (schemathesis), every route the source mounts and every field
//! the request bodies take against it: a new endpoint or field fails them until it is
//! described there.

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
