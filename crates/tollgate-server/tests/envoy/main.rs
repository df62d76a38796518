//! Envoy's rate limit service end to end: a tonic server on `127.0.0.1:0` and a client built
//! from Envoy's proto (envoy-types), plus the descriptor configuration's errors.
//!
//! - `answers.rs`: matching, statuses, costs, shadow mode, replaces, supplied limits, failures.
//! - `configuration.rs`: the descriptor file's errors, each with its file, line and field.

mod answers;
mod configuration;

use std::sync::{Arc, Mutex};
use std::time::Duration;

use envoy_types::pb::envoy::extensions::common::ratelimit::v3::RateLimitDescriptor;
use envoy_types::pb::envoy::extensions::common::ratelimit::v3::rate_limit_descriptor::{
    Entry, RateLimitOverride,
};
use envoy_types::pb::envoy::service::ratelimit::v3::rate_limit_response::{
    Code, DescriptorStatus, RateLimit,
};
use envoy_types::pb::envoy::service::ratelimit::v3::rate_limit_service_client::RateLimitServiceClient;
use envoy_types::pb::envoy::service::ratelimit::v3::{RateLimitRequest, RateLimitResponse};
use envoy_types::pb::google::protobuf::UInt64Value;
use tokio::net::TcpListener;
use tollgate::testing::FlakyStore;
use tollgate::{Limiter, ManualClock, MemoryStore, Store};
use tollgate_server::{ConfigError, DescriptorVerdict as Verdict, EnvoyConfig, EnvoyService, Unit};
use tonic::transport::Channel;
use tonic::transport::server::TcpIncoming;

// ---------------------------------------------------------------------------------------------
// Harness

type Client = RateLimitServiceClient<Channel>;

/// Serves `limiter` on a fresh port and connects a client to it.
async fn serve<S: Store>(limiter: EnvoyService<S>) -> Client {
    let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind");
    let addr = listener.local_addr().expect("local addr");
    tokio::spawn(
        tonic::transport::Server::builder()
            .add_service(limiter.into_service())
            .serve_with_incoming(TcpIncoming::from(listener)),
    );
    RateLimitServiceClient::connect(format!("http://{addr}"))
        .await
        .expect("connect")
}

/// A server for `yaml` over a memory store, with a manual clock and an observer log.
async fn start(yaml: &str) -> (Client, ManualClock, Observed) {
    start_on(MemoryStore::new(), yaml).await
}

async fn start_on<S: Store>(store: S, yaml: &str) -> (Client, ManualClock, Observed) {
    let config = EnvoyConfig::from_yaml(yaml, "ratelimit.yaml").expect("valid config");
    let clock = ManualClock::new();
    let observed = Observed::default();
    let log = observed.clone();
    let limiter = EnvoyService::new(&Limiter::new(store).with_clock(clock.clone()), &config)
        .with_observer(Arc::new(
            move |policy: &str, _: &dyn tollgate::Key, verdict| log.push(policy, verdict),
        ));
    (serve(limiter).await, clock, observed)
}

/// What the observer was told.
#[derive(Clone, Default)]
struct Observed(Arc<Mutex<Vec<(String, Verdict)>>>);

impl Observed {
    fn push(&self, policy: &str, verdict: Verdict) {
        self.0
            .lock()
            .expect("not poisoned")
            .push((policy.to_owned(), verdict));
    }

    fn take(&self) -> Vec<(String, Verdict)> {
        std::mem::take(&mut *self.0.lock().expect("not poisoned"))
    }
}

/// A descriptor of `(key, value)` entries.
fn descriptor(entries: &[(&str, &str)]) -> RateLimitDescriptor {
    RateLimitDescriptor {
        entries: entries
            .iter()
            .map(|(key, value)| Entry {
                key: (*key).to_owned(),
                value: (*value).to_owned(),
            })
            .collect(),
        ..Default::default()
    }
}

/// A descriptor with its own `hits_addend`.
fn descriptor_adding(entries: &[(&str, &str)], hits: u64) -> RateLimitDescriptor {
    RateLimitDescriptor {
        hits_addend: Some(UInt64Value { value: hits }),
        ..descriptor(entries)
    }
}

fn request(domain: &str, descriptors: Vec<RateLimitDescriptor>) -> RateLimitRequest {
    RateLimitRequest {
        domain: domain.to_owned(),
        descriptors,
        hits_addend: 0,
    }
}

async fn ask(client: &mut Client, request: RateLimitRequest) -> RateLimitResponse {
    client
        .should_rate_limit(request)
        .await
        .expect("a response")
        .into_inner()
}

/// Asks about one descriptor and returns its status.
async fn ask_one(client: &mut Client, domain: &str, entries: &[(&str, &str)]) -> DescriptorStatus {
    let response = ask(client, request(domain, vec![descriptor(entries)])).await;
    assert_eq!(response.statuses.len(), 1);
    response.statuses[0].clone()
}

const OK: i32 = Code::Ok as i32;
const OVER: i32 = Code::OverLimit as i32;

fn limit(name: &str, requests_per_unit: u32, unit: Unit) -> Option<RateLimit> {
    let unit = match unit {
        Unit::Second => 1,
        Unit::Minute => 2,
        Unit::Hour => 3,
        Unit::Day => 4,
        Unit::Month => 5,
        Unit::Year => 6,
        Unit::Week => 7,
    };
    Some(RateLimit {
        name: name.to_owned(),
        requests_per_unit,
        unit,
    })
}

fn seconds(status: &DescriptorStatus) -> Option<i64> {
    status.duration_until_reset.map(|d| d.seconds)
}
