//! [`Breach`]: a request a limit denied, as the on-breach hook and the rejection response see
//! it.

use axum::body::Body;
use http::{HeaderValue, Response, StatusCode, header};
use tollgate::Decision;

use crate::headers::retry_after_secs;
use crate::key::RequestKey;

/// A request denied by a limit.
///
/// ```
/// use tollgate_tower::{Breach, Limit, RateLimiter};
///
/// let limiter = RateLimiter::builder()
///     .default_limit(Limit::new("100/minute"))
///     .on_breach(|parts, breach: &Breach| {
///         eprintln!("{} {} denied by {}", parts.method, parts.uri, breach.limit_name());
///     })
///     // A plain-text 429 instead of the JSON default (rate-limit headers are added to it).
///     .rejection(|breach: &Breach| {
///         http::Response::builder()
///             .status(429)
///             .header("retry-after", breach.retry_after_secs())
///             .body(axum::body::Body::from("slow down\n"))
///             .expect("valid response")
///     })
///     .build()?;
/// # Ok::<(), tollgate_tower::ConfigError>(())
/// ```
#[derive(Debug, Clone)]
pub struct Breach {
    pub(crate) limit_name: std::sync::Arc<str>,
    pub(crate) key: RequestKey,
    pub(crate) decision: Decision,
}

impl Breach {
    /// The name of the limit that denied the request: the route it was declared on, its
    /// shared name, `default` or `application`.
    pub fn limit_name(&self) -> &str {
        &self.limit_name
    }

    /// The key the request was counted against.
    pub fn key(&self) -> &RequestKey {
        &self.key
    }

    /// The denying decision.
    pub fn decision(&self) -> &Decision {
        &self.decision
    }

    /// The wait before a retry can succeed, in whole seconds, rounded up and at least 1: the
    /// value of `Retry-After`.
    pub fn retry_after_secs(&self) -> u64 {
        retry_after_secs(&self.decision)
    }
}

/// The default rejection: 429, `Retry-After`, and
/// `{"error":"rate limit exceeded","retry_after":N}`.
pub(crate) fn too_many_requests(breach: &Breach) -> Response<Body> {
    let retry_after = breach.retry_after_secs();
    let mut response = json(
        StatusCode::TOO_MANY_REQUESTS,
        format!(r#"{{"error":"rate limit exceeded","retry_after":{retry_after}}}"#),
    );
    response
        .headers_mut()
        .insert(header::RETRY_AFTER, HeaderValue::from(retry_after));
    response
}

/// A rejection for gRPC services (tonic): a trailers-only gRPC response with status
/// `RESOURCE_EXHAUSTED` (8), a `grpc-message` saying when to retry, and `Retry-After`.
///
/// gRPC clients read the status from `grpc-status`, not from the HTTP status, which is 200.
///
/// ```
/// use tollgate_tower::{RateLimiter, grpc_rejection};
///
/// let limiter = RateLimiter::builder()
///     .route("/helloworld.Greeter/SayHello", "10/minute")
///     .rejection(grpc_rejection)
///     .build()?;
/// // tonic::transport::Server::builder().layer(limiter.layer()).add_service(...)
/// # Ok::<(), tollgate_tower::ConfigError>(())
/// ```
pub fn grpc_rejection(breach: &Breach) -> Response<Body> {
    let retry_after = breach.retry_after_secs();
    let mut response = Response::new(Body::empty());
    let headers = response.headers_mut();
    headers.insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("application/grpc"),
    );
    headers.insert("grpc-status", HeaderValue::from_static("8"));
    headers.insert(
        "grpc-message",
        HeaderValue::from_str(&format!("rate limit exceeded; retry after {retry_after} s"))
            .unwrap_or_else(|_| HeaderValue::from_static("rate limit exceeded")),
    );
    headers.insert(header::RETRY_AFTER, HeaderValue::from(retry_after));
    response
}

/// A response with a JSON body `{"error": message}`, the message escaped.
pub(crate) fn error(status: StatusCode, message: &str) -> Response<Body> {
    let mut escaped = String::with_capacity(message.len());
    for c in message.chars() {
        match c {
            '"' => escaped.push_str("\\\""),
            '\\' => escaped.push_str("\\\\"),
            c if c < ' ' => escaped.push_str(&format!("\\u{:04x}", u32::from(c))),
            c => escaped.push(c),
        }
    }
    json(status, format!(r#"{{"error":"{escaped}"}}"#))
}

fn json(status: StatusCode, body: String) -> Response<Body> {
    let mut response = Response::new(Body::from(body));
    *response.status_mut() = status;
    response.headers_mut().insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("application/json"),
    );
    response
}
