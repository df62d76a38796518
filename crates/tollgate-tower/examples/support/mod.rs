//! What every example shares: serving its app on the address given as the first argument.

use std::net::SocketAddr;

use axum::Router;

/// Serves `app` on the first command-line argument (default `127.0.0.1:3000`), with the
/// peer address available to the rate limiter, until the process is stopped.
pub(crate) async fn serve(app: Router) -> Result<(), Box<dyn std::error::Error>> {
    let addr = std::env::args()
        .nth(1)
        .unwrap_or_else(|| "127.0.0.1:3000".to_owned());
    let listener = tokio::net::TcpListener::bind(&addr)
        .await
        .map_err(|err| format!("cannot listen on {addr}: {err}"))?;
    println!("listening on http://{}", listener.local_addr()?);
    axum::serve(
        listener,
        app.into_make_service_with_connect_info::<SocketAddr>(),
    )
    .await?;
    Ok(())
}
