//! The lesson's limit helper applied to two routes: `GET /search` 2 per minute and
//! `GET /report` 1 per minute per client IP, and `GET /health` exempt (never 429).
//!
//! ```sh
//! cargo run -p tollgate-tower --example lesson_two_routes -- 127.0.0.1:3000
//! for i in 1 2 3; do curl -s -o /dev/null -w '%{http_code}\n' http://127.0.0.1:3000/search; done
//! ```

mod support;

use axum::{Router, routing::get};
use tollgate_tower::{Builder, HttpLimiter, Limit, key};

/// The one limit helper: `rates` per client IP, fixed window, on the route at `path`.
fn limited(
    limits: Builder<tollgate::MemoryStore>,
    path: &str,
    rates: &str,
) -> Builder<tollgate::MemoryStore> {
    limits.route(path, Limit::new(rates).key(key::client_ip()))
}

/// The app: two limited routes and an exempt health check.
fn app() -> Router {
    let limits = HttpLimiter::builder();
    let limits = limited(limits, "/search", "2/minute");
    let limits = limited(limits, "/report", "1/minute");
    let limiter = limits.exempt("/health").build().expect("valid limits");
    Router::new()
        .route("/search", get(|| async { "results" }))
        .route("/report", get(|| async { "report" }))
        .route("/health", get(|| async { "ok" }))
        .layer(limiter.layer())
}

#[tokio::main]
async fn main() -> Result<(), Box<dyn std::error::Error>> {
    support::serve(app()).await
}
