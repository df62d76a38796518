//! The HTTP/1.1 listeners (check API, proxy): hyper's connection over a [`TimedIo`], each
//! request with its body under `body_timeout` and in flight until its response ends.

use std::time::Duration;

use hyper::body::Incoming;
use tokio::sync::watch;

use crate::http::limits::Deadline;
use crate::server::connection::{CappedListener, InFlightBody, TimedIo};
use crate::server::stopping;

/// Serves `router` on `listener` until `stop`, then lets each connection finish its request
/// in flight.
pub(crate) async fn serve_http(
    listener: CappedListener,
    router: axum::Router,
    body_timeout: Duration,
    mut stop: watch::Receiver<bool>,
) -> std::io::Result<()> {
    let mut connections = tokio::task::JoinSet::new();
    loop {
        let (io, peer) = tokio::select! {
            () = stopping(&mut stop) => break,
            accepted = listener.accept() => accepted,
        };
        let router = router.clone();
        let mut stop = stop.clone();
        connections.spawn(async move {
            let activity = std::sync::Arc::clone(io.activity());
            let service = hyper::service::service_fn(move |request: hyper::Request<Incoming>| {
                let in_flight = activity.start();
                let (parts, body) = request.into_parts();
                let (body, expired) = Deadline::new(body, body_timeout);
                let mut request =
                    axum::extract::Request::from_parts(parts, axum::body::Body::new(body));
                request
                    .extensions_mut()
                    .insert(axum::extract::ConnectInfo(peer));
                let answer = tower::ServiceExt::oneshot(router.clone(), request);
                async move {
                    let Ok(response) = answer.await;
                    let response = expired.answer(response);
                    Ok::<_, std::convert::Infallible>(
                        response.map(|body| InFlightBody::new(body, Some(in_flight))),
                    )
                }
            });
            serve_connection(io, service, peer, &mut stop).await;
        });
        while connections.try_join_next().is_some() {}
    }
    while connections.join_next().await.is_some() {}
    Ok(())
}

/// Serves one connection until it ends, or shuts it down gracefully at `stop`. Its timers are
/// the [`TimedIo`]'s, not hyper's.
async fn serve_connection<S>(
    io: TimedIo,
    service: S,
    peer: std::net::SocketAddr,
    stop: &mut watch::Receiver<bool>,
) where
    S: hyper::service::Service<
            hyper::Request<Incoming>,
            Response = hyper::Response<InFlightBody<axum::body::Body>>,
        >,
    S::Error: Into<Box<dyn std::error::Error + Send + Sync>>,
{
    let mut builder = hyper::server::conn::http1::Builder::new();
    builder.header_read_timeout(None).keep_alive(true);
    let conn = builder.serve_connection(hyper_util::rt::TokioIo::new(io), service);
    tokio::pin!(conn);
    tokio::select! {
        result = conn.as_mut() => {
            if let Err(err) = result {
                tracing::debug!(%peer, "connection closed: {err}");
            }
        }
        () = stopping(stop) => {
            conn.as_mut().graceful_shutdown();
            let _ = conn.await;
        }
    }
}
