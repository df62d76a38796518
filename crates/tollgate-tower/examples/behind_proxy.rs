//! Behind a reverse proxy: the proxy at `127.0.0.1` is trusted, so the client is the
//! rightmost untrusted address of `X-Forwarded-For`; `GET /ping`, 2 per minute per real
//! client. Any other peer is its own client, whatever headers it sends.
//!
//! ```sh
//! cargo run -p tollgate-tower --example behind_proxy -- 127.0.0.1:3000
//! for i in 1 2 3; do curl -s -o /dev/null -w '%{http_code}\n' -H 'X-Forwarded-For: 203.0.113.7' http://127.0.0.1:3000/ping; done
//! curl -s -o /dev/null -w '%{http_code}\n' -H 'X-Forwarded-For: 198.51.100.9' http://127.0.0.1:3000/ping
//! ```

mod support;

use axum::{Extension, Router, routing::get};
use tollgate_tower::{ClientIp, HttpLimiter, Limit};

/// The app: `/ping` answers `pong from <client>`, 2 per minute per client behind the proxy.
fn app() -> Router {
    let limiter = HttpLimiter::builder()
        .trusted_proxies(["127.0.0.1/32"])
        .route("/ping", Limit::new("2/minute"))
        .build()
        .expect("valid limits");
    Router::new()
        .route(
            "/ping",
            get(
                |Extension(ClientIp(client)): Extension<ClientIp>| async move {
                    format!("pong from {client}")
                },
            ),
        )
        .layer(limiter.layer())
}

#[tokio::main]
async fn main() -> Result<(), Box<dyn std::error::Error>> {
    support::serve(app()).await
}
