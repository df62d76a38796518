//! The layer in front of a tonic gRPC service: per-method limits on the gRPC path, the peer
//! from tonic's `TcpConnectInfo`, and a gRPC `RESOURCE_EXHAUSTED` instead of an HTTP 429.

use envoy_types::pb::envoy::service::ratelimit::v3::rate_limit_response::Code;
use envoy_types::pb::envoy::service::ratelimit::v3::rate_limit_service_client::RateLimitServiceClient;
use envoy_types::pb::envoy::service::ratelimit::v3::rate_limit_service_server::{
    RateLimitService, RateLimitServiceServer,
};
use envoy_types::pb::envoy::service::ratelimit::v3::{RateLimitRequest, RateLimitResponse};
use tokio::net::TcpListener;
use tollgate_tower::{HttpLimiter, grpc_rejection};
use tonic::transport::server::{TcpConnectInfo, TcpIncoming};

/// Any gRPC service will do: this one answers OK.
struct AlwaysOk;

#[tonic::async_trait]
impl RateLimitService for AlwaysOk {
    async fn should_rate_limit(
        &self,
        _: tonic::Request<RateLimitRequest>,
    ) -> Result<tonic::Response<RateLimitResponse>, tonic::Status> {
        Ok(tonic::Response::new(RateLimitResponse {
            overall_code: Code::Ok as i32,
            ..Default::default()
        }))
    }
}

#[tokio::test]
async fn tonic_service_behind_the_layer() {
    let limiter = HttpLimiter::builder()
        .peer_addr_from(|extensions| {
            extensions
                .get::<TcpConnectInfo>()
                .and_then(TcpConnectInfo::remote_addr)
                .map(|addr| addr.ip())
        })
        .route(
            "/envoy.service.ratelimit.v3.RateLimitService/ShouldRateLimit",
            "2/minute",
        )
        .rejection(grpc_rejection)
        .build()
        .expect("valid");
    let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind");
    let addr = listener.local_addr().expect("address");
    tokio::spawn(
        tonic::transport::Server::builder()
            .layer(limiter.layer())
            .add_service(RateLimitServiceServer::new(AlwaysOk))
            .serve_with_incoming(TcpIncoming::from(listener)),
    );
    let mut client = RateLimitServiceClient::connect(format!("http://{addr}"))
        .await
        .expect("connect");
    for _ in 0..2 {
        let response = client
            .should_rate_limit(RateLimitRequest::default())
            .await
            .expect("allowed");
        assert!(response.metadata().get("ratelimit").is_some());
    }
    let denied = client
        .should_rate_limit(RateLimitRequest::default())
        .await
        .expect_err("the third call is over the limit");
    assert_eq!(denied.code(), tonic::Code::ResourceExhausted);
    assert!(
        denied
            .message()
            .starts_with("rate limit exceeded; retry after "),
        "{}",
        denied.message()
    );
    let retry: u64 = denied
        .metadata()
        .get("retry-after")
        .and_then(|v| v.to_str().ok()?.parse().ok())
        .expect("Retry-After");
    assert!((1..=60).contains(&retry));
}
