//! The lesson's per-user limit: `GET /ping`, 3 per minute keyed on `X-User-Id` when the
//! request has one, else on the client IP. Alice's 4th request is denied while Bob goes on.
//!
//! ```sh
//! cargo run -p tollgate-tower --example lesson_per_user -- 127.0.0.1:3000
//! for i in 1 2 3 4; do curl -s -o /dev/null -w '%{http_code}\n' -H 'X-User-Id: alice' http://127.0.0.1:3000/ping; done
//! curl -s -o /dev/null -w '%{http_code}\n' -H 'X-User-Id: bob' http://127.0.0.1:3000/ping
//! ```

mod support;

use axum::{Router, routing::get};
use tollgate_tower::key;
use tollgate_tower::{HttpLimiter, Limit};

/// The app: `/ping`, 3 per minute per user (`X-User-Id`), or per IP without one.
fn app() -> Router {
    let limiter = HttpLimiter::builder()
        .key(key::header("x-user-id").or(key::client_ip()))
        .route("/ping", Limit::new("3/minute"))
        .build()
        .expect("a valid limit");
    Router::new()
        .route("/ping", get(|| async { "pong" }))
        .layer(limiter.layer())
}

#[tokio::main]
async fn main() -> Result<(), Box<dyn std::error::Error>> {
    support::serve(app()).await
}
