//! The Envoy rate limit service's listener: tonic's HTTP/2 server over the same capped,
//! timed connections as the HTTP listeners, each call bounded by `body_timeout`.

use std::convert::Infallible;
use std::future::Future;
use std::sync::Arc;
use std::time::Instant;

use envoy_types::pb::envoy::service::ratelimit::v3::rate_limit_service_server::{
    RateLimitService, RateLimitServiceServer,
};
use envoy_types::pb::envoy::service::ratelimit::v3::{RateLimitRequest, RateLimitResponse};
use tonic::service::Routes;

use crate::config::Connections;
use crate::server::connection::{Activity, CappedListener, InFlight, InFlightBody};
use crate::state::ServerState;

/// How many calls one connection may have open at once (HTTP/2 `MAX_CONCURRENT_STREAMS`;
/// tonic's default is no limit). Envoy opens another connection when it needs more.
pub(crate) const MAX_CALLS_PER_CONNECTION: u32 = 200;

/// Serves Envoy's rate limit service over `state` on `listener` until `stop`, then lets
/// calls in flight finish.
///
/// A connection must send its first call within `header_timeout` of connecting (a client
/// that sends nothing, or half a preface, is closed then), and is closed after
/// `keepalive_timeout` without a call in flight. A call must be received and answered within
/// `body_timeout` (or the client's shorter `grpc-timeout`), else it ends `CANCELLED`; and
/// its answer taken within `body_timeout`, else the connection is closed (a client that
/// leaves its flow-control window shut would otherwise hold it forever).
pub(crate) async fn serve_grpc(
    listener: CappedListener,
    limits: Connections,
    state: Arc<ServerState>,
    stop: impl Future<Output = ()>,
) -> std::io::Result<()> {
    let incoming = futures_util::stream::unfold(listener, |listener| async move {
        let (io, _) = listener.accept().await;
        Some((Ok::<_, Infallible>(io), listener))
    });
    tonic::transport::Server::builder()
        .timeout(limits.body_timeout)
        .max_concurrent_streams(MAX_CALLS_PER_CONNECTION)
        .layer(tower::layer::layer_fn(in_flight))
        .add_service(RateLimitServiceServer::new(EnvoyFront(state)))
        .serve_with_incoming_shutdown(incoming, stop)
        .await
        .map_err(std::io::Error::other)
}

/// `routes`, each call in flight on its connection (no connection timer runs) until its
/// response ends, which must be within `body_timeout` of its head.
fn in_flight(
    routes: Routes,
) -> impl tower::Service<
    http::Request<tonic::body::Body>,
    Response = http::Response<InFlightBody<tonic::body::Body>>,
    Error = Infallible,
    Future = impl Future<Output = Result<http::Response<InFlightBody<tonic::body::Body>>, Infallible>>
             + Send,
> + Clone
+ Send
+ 'static {
    tower::service_fn(move |request: http::Request<tonic::body::Body>| {
        // tonic puts the connection's `TimedIo::connect_info` in every request.
        let in_flight = request
            .extensions()
            .get::<Arc<Activity>>()
            .map(Activity::start);
        let call = tower::ServiceExt::oneshot(routes.clone(), request);
        async move {
            let Ok(response) = call.await;
            let in_flight = in_flight.map(InFlight::answering);
            Ok(response.map(|body| InFlightBody::new(body, in_flight)))
        }
    })
}

/// Envoy's rate limit service over the configuration in force.
struct EnvoyFront(Arc<ServerState>);

#[tonic::async_trait]
impl RateLimitService for EnvoyFront {
    async fn should_rate_limit(
        &self,
        request: tonic::Request<RateLimitRequest>,
    ) -> Result<tonic::Response<RateLimitResponse>, tonic::Status> {
        let started = Instant::now();
        let in_force = self.0.in_force();
        let envoy = in_force.envoy().ok_or_else(|| {
            tonic::Status::unavailable("no Envoy descriptor configuration is in force")
        })?;
        let answer = envoy.check(request.get_ref()).await;
        self.0.metrics().took(started.elapsed());
        answer.map(tonic::Response::new)
    }
}
