//! The limiter's own answers: [`Breach`] (a request a limit denied, as the on-breach hook
//! and the rejection see it), the default 429, [`grpc_rejection`], and [`json_error`] and
//! [`store_unavailable`], which the server's front ends answer with too.

use axum::body::Body;
use http::{HeaderValue, Response, StatusCode, header};
use tollgate::Decision;

use crate::key::RequestKey;

/// A request denied by a limit.
///
/// ```
/// use std::sync::{Arc, Mutex};
/// use tollgate::Key;
/// use tollgate_tower::{Breach, HttpLimiter, Limit, PeerAddr};
///
/// # fn send(limiter: &tollgate_tower::HttpLimiter, request: http::Request<()>) -> http::Response<tollgate_tower::HttpLimitBody<()>> {
/// #     use tower::{Layer, ServiceExt};
/// #     let ok = tower::service_fn(|_: http::Request<()>| async { Ok::<_, std::convert::Infallible>(http::Response::new(())) });
/// #     futures_executor::block_on(limiter.layer().layer(ok).oneshot(request)).unwrap()
/// # }
/// let breaches: Arc<Mutex<Vec<Breach>>> = Arc::default();
/// let log = Arc::clone(&breaches);
/// let limiter = HttpLimiter::builder()
///     .route("/login", Limit::new("1/minute"))
///     .on_breach(move |parts, breach: &Breach| {
///         eprintln!("{} {} denied by {}", parts.method, parts.uri, breach.limit_name());
///         log.lock().unwrap().push(breach.clone());
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
/// let login = || {
///     let mut request = http::Request::post("/login").body(()).unwrap();
///     request.extensions_mut().insert(PeerAddr("192.0.2.1:4000".parse().unwrap()));
///     request
/// };
/// assert_eq!(send(&limiter, login()).status(), 200);
/// let denied = send(&limiter, login());
/// assert_eq!(denied.headers()["retry-after"], "60");
///
/// let breach = breaches.lock().unwrap().pop().expect("one breach");
/// assert_eq!(breach.limit_name(), "/login");
/// assert_eq!(&*breach.key().key_bytes(), b"192.0.2.1"); // the client IP, the default key
/// assert_eq!((breach.decision().limit(), breach.decision().remaining()), (1, 0));
/// assert_eq!(breach.retry_after_secs(), 60);
/// # Ok::<(), tollgate_tower::BuildError>(())
/// ```
#[derive(Debug, Clone)]
pub struct Breach {
    pub(crate) limit_name: std::sync::Arc<str>,
    pub(crate) key: RequestKey,
    pub(crate) decision: Decision,
    pub(crate) shadow: bool,
}

impl Breach {
    /// The name of the limit that denied the request: its name ([`crate::Limit::name`]), or
    /// else the route it was declared on, its shared name, `default` or `application`
    /// (`default#2` for the second default limit).
    pub fn limit_name(&self) -> &str {
        &self.limit_name
    }

    /// Whether the limit is a shadow one ([`crate::Limit::shadow`]): it would have denied
    /// the request, which went through. The rejection never sees such a breach; the
    /// on-breach hook does.
    ///
    /// ```
    /// use std::sync::{Arc, Mutex};
    /// use tollgate_tower::{HttpLimiter, Limit};
    ///
    /// # fn send(limiter: &tollgate_tower::HttpLimiter, request: http::Request<()>) -> http::Response<tollgate_tower::HttpLimitBody<()>> {
    /// #     use tower::{Layer, ServiceExt};
    /// #     let ok = tower::service_fn(|_: http::Request<()>| async { Ok::<_, std::convert::Infallible>(http::Response::new(())) });
    /// #     futures_executor::block_on(limiter.layer().layer(ok).oneshot(request)).unwrap()
    /// # }
    /// # let get = |path: &str| http::Request::get(path).body(()).unwrap();
    /// let seen: Arc<Mutex<Vec<(String, bool)>>> = Arc::default();
    /// let log = Arc::clone(&seen);
    /// let limiter = HttpLimiter::builder()
    ///     .route("/a", Limit::new("2/minute").name("enforced"))
    ///     .route("/a", Limit::new("1/minute").name("trial").shadow())
    ///     .on_breach(move |_, breach| {
    ///         log.lock().unwrap().push((breach.limit_name().to_owned(), breach.is_shadow()));
    ///     })
    ///     .build()?;
    /// let statuses: Vec<u16> = (0..3).map(|_| send(&limiter, get("/a")).status().as_u16()).collect();
    /// assert_eq!(statuses, [200, 200, 429]);
    /// // The trial would have denied the second request; `enforced` denied the third (and
    /// // the trial was never reached).
    /// assert_eq!(*seen.lock().unwrap(), [("trial".to_owned(), true), ("enforced".to_owned(), false)]);
    /// # Ok::<(), tollgate_tower::BuildError>(())
    /// ```
    pub fn is_shadow(&self) -> bool {
        self.shadow
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
        self.decision.retry_after_secs().unwrap_or(1)
    }
}

/// The JSON body of every answer of the limiter's own: `{"error": ...}`, and for a 429
/// `"retry_after"` in seconds, and `"banned": true` when the client is banned.
#[derive(serde::Serialize)]
struct ErrorBody<'a> {
    error: &'a str,
    #[serde(skip_serializing_if = "Option::is_none")]
    retry_after: Option<u64>,
    #[serde(skip_serializing_if = "std::ops::Not::not")]
    banned: bool,
}

/// The default rejection: 429, `Retry-After`, and
/// `{"error":"rate limit exceeded","retry_after":N}`, with `"banned":true` when the client
/// is banned after repeated breaches (see [`crate::Limit::ban`]).
///
/// ```
/// use std::time::Duration;
/// use tollgate_tower::{HttpLimiter, Limit};
///
/// # fn send(limiter: &tollgate_tower::HttpLimiter, request: http::Request<()>) -> http::Response<tollgate_tower::HttpLimitBody<()>> {
/// #     use tower::{Layer, ServiceExt};
/// #     let ok = tower::service_fn(|_: http::Request<()>| async { Ok::<_, std::convert::Infallible>(http::Response::new(())) });
/// #     futures_executor::block_on(limiter.layer().layer(ok).oneshot(request)).unwrap()
/// # }
/// # let get = |path: &str| http::Request::get(path).body(()).unwrap();
/// # let body = |response: http::Response<tollgate_tower::HttpLimitBody<()>>| {
/// #     let http_body_util::Either::Right(body) = response.into_body() else { panic!("the limiter's") };
/// #     let bytes = futures_executor::block_on(http_body_util::BodyExt::collect(body)).unwrap().to_bytes();
/// #     String::from_utf8(bytes.to_vec()).unwrap()
/// # };
/// let limiter = HttpLimiter::builder()
///     .default_limit(Limit::new("1/minute").ban("1/minute", Duration::from_secs(600)))
///     .build()?;
/// assert_eq!(send(&limiter, get("/")).status(), 200);
/// let banned = send(&limiter, get("/"));
/// assert_eq!(banned.headers()["retry-after"], "600");
/// assert_eq!(body(banned), r#"{"error":"rate limit exceeded","retry_after":600,"banned":true}"#);
/// # Ok::<(), tollgate_tower::BuildError>(())
/// ```
pub(crate) fn too_many_requests(breach: &Breach) -> Response<Body> {
    let retry_after = breach.retry_after_secs();
    let mut response = json(
        StatusCode::TOO_MANY_REQUESTS,
        &ErrorBody {
            error: "rate limit exceeded",
            retry_after: Some(retry_after),
            banned: breach.decision.banned(),
        },
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
/// use tollgate_tower::{HttpLimiter, grpc_rejection};
///
/// let limiter = HttpLimiter::builder()
///     .route("/helloworld.Greeter/SayHello", "10/minute")
///     .rejection(grpc_rejection)
///     .build()?;
/// // tonic::transport::Server::builder().layer(limiter.layer()).add_service(...)
/// # Ok::<(), tollgate_tower::BuildError>(())
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
    let banned = if breach.decision.banned() {
        " (banned)"
    } else {
        ""
    };
    headers.insert(
        "grpc-message",
        HeaderValue::from_str(&format!(
            "rate limit exceeded{banned}; retry after {retry_after} s"
        ))
        .unwrap_or_else(|_| HeaderValue::from_static("rate limit exceeded")),
    );
    headers.insert(header::RETRY_AFTER, HeaderValue::from(retry_after));
    response
}

/// A response with the JSON body `{"error": message}`: how every part of tollgate says what
/// went wrong.
///
/// ```
/// use http::StatusCode;
///
/// let response = tollgate_tower::json_error(StatusCode::BAD_REQUEST, "no \"key\" given");
/// assert_eq!(response.status(), 400);
/// assert_eq!(response.headers()["content-type"], "application/json");
/// ```
pub fn json_error(status: StatusCode, message: &str) -> Response<Body> {
    json(
        status,
        &ErrorBody {
            error: message,
            retry_after: None,
            banned: false,
        },
    )
}

/// The answer when the store that keeps the counts fails and the failure mode says deny:
/// `503 Service Unavailable`, `Retry-After: 1` and
/// `{"error":"rate limit store unavailable"}`.
///
/// ```
/// let response = tollgate_tower::store_unavailable();
/// assert_eq!(response.status(), 503);
/// assert_eq!(response.headers()["retry-after"], "1");
/// ```
pub fn store_unavailable() -> Response<Body> {
    let mut response = json_error(
        StatusCode::SERVICE_UNAVAILABLE,
        "rate limit store unavailable",
    );
    response
        .headers_mut()
        .insert(header::RETRY_AFTER, HeaderValue::from(1u64));
    response
}

/// A response with the JSON body `body`.
fn json(status: StatusCode, body: &ErrorBody<'_>) -> Response<Body> {
    // A struct of a string and a number always serializes.
    let bytes = serde_json::to_vec(body).unwrap_or_default();
    let mut response = Response::new(Body::from(bytes));
    *response.status_mut() = status;
    response.headers_mut().insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("application/json"),
    );
    response
}
