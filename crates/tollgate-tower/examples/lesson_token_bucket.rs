//! The lesson's token bucket: `GET /ping` from a bucket of 2 tokens per client IP, refilled
//! at 1 per second: 200, 200, 429, 429, and a second later 200 again.
//!
//! ```sh
//! cargo run -p tollgate-tower --example lesson_token_bucket -- 127.0.0.1:3000
//! for i in 1 2 3 4; do curl -s -o /dev/null -w '%{http_code}\n' http://127.0.0.1:3000/ping; done
//! sleep 1.1; curl -s -o /dev/null -w '%{http_code}\n' http://127.0.0.1:3000/ping
//! ```

mod support;

use axum::{Router, routing::get};
use tollgate::Strategy;
use tollgate_tower::{HttpLimiter, Limit};

/// The app: `/ping` behind a token bucket of capacity 2, refilled 1 per second, per IP.
fn app() -> Router {
    let limiter = HttpLimiter::builder()
        .route(
            "/ping",
            Limit::new("1/second")
                .strategy(Strategy::TokenBucket)
                .burst(2),
        )
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
