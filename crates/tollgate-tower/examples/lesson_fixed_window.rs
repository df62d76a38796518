//! The lesson's fixed window: `GET /ping` answers `pong`, 3 requests per minute per client
//! IP; the 4th and 5th get 429 with `Retry-After`.
//!
//! ```sh
//! cargo run -p tollgate-tower --example lesson_fixed_window -- 127.0.0.1:3000
//! for i in 1 2 3 4 5; do curl -si http://127.0.0.1:3000/ping | head -1; done
//! ```

mod support;

use axum::{Router, routing::get};
use tollgate_tower::{HttpLimiter, Limit};

/// The app: `/ping`, 3 per minute per client IP, in a window starting at the first request.
fn app() -> Router {
    let limiter = HttpLimiter::builder()
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
