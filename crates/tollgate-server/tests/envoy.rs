//! Envoy's rate limit service end to end: a tonic server on `127.0.0.1:0` and a client built
//! from Envoy's proto (envoy-types), plus the descriptor configuration's errors.

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
        .with_observer(Arc::new(move |policy: &str, verdict| {
            log.push(policy, verdict)
        }));
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

// ---------------------------------------------------------------------------------------------
// Matching

const NESTED: &str = r#"
domain: edge
descriptors:
  - key: tenant
    value: acme
    descriptors:
      - key: user
        rate_limit:
          unit: minute
          requests_per_unit: 2
  - key: tenant
    rate_limit:
      unit: minute
      requests_per_unit: 1
  - key: path
    value: "/api/*"
    rate_limit: { unit: hour, requests_per_unit: 1 }
"#;

#[tokio::test]
async fn nested_descriptors_are_held_to_the_node_their_last_entry_reaches() {
    let (mut client, _, observed) = start(NESTED).await;

    // tenant=acme, user=alice: the nested limit, 2/minute.
    let status = ask_one(
        &mut client,
        "edge",
        &[("tenant", "acme"), ("user", "alice")],
    )
    .await;
    assert_eq!(status.code, OK);
    assert_eq!(status.current_limit, limit("", 2, Unit::Minute));
    assert_eq!(status.limit_remaining, 1);
    assert_eq!(
        observed.take(),
        [("envoy:edge:tenant=acme/user".to_owned(), Verdict::Allowed)]
    );

    // tenant=acme alone reaches a node without a limit.
    let status = ask_one(&mut client, "edge", &[("tenant", "acme")]).await;
    assert_eq!((status.code, status.current_limit), (OK, None));
    assert!(observed.take().is_empty());

    // Another tenant falls to the wildcard, 1/minute.
    let status = ask_one(&mut client, "edge", &[("tenant", "globex")]).await;
    assert_eq!(status.current_limit, limit("", 1, Unit::Minute));

    // More entries than the configuration has levels: no limit.
    let status = ask_one(
        &mut client,
        "edge",
        &[("tenant", "acme"), ("user", "alice"), ("device", "x")],
    )
    .await;
    assert_eq!((status.code, status.current_limit), (OK, None));

    // An unknown key, and an unknown domain: no limit.
    let status = ask_one(&mut client, "edge", &[("country", "fr")]).await;
    assert_eq!((status.code, status.current_limit), (OK, None));
    let status = ask_one(&mut client, "nope", &[("tenant", "acme")]).await;
    assert_eq!((status.code, status.current_limit), (OK, None));
}

#[tokio::test]
async fn wildcard_and_prefix_values_count_each_value_apart() {
    let (mut client, _, _) = start(NESTED).await;

    let alice = [("tenant", "acme"), ("user", "alice")];
    let bob = [("tenant", "acme"), ("user", "bob")];
    assert_eq!(ask_one(&mut client, "edge", &alice).await.code, OK);
    assert_eq!(ask_one(&mut client, "edge", &alice).await.code, OK);
    assert_eq!(ask_one(&mut client, "edge", &alice).await.code, OVER);
    assert_eq!(ask_one(&mut client, "edge", &bob).await.code, OK);

    // "/api/*" is a prefix: each path under it counts apart; others do not match.
    let users = ask_one(&mut client, "edge", &[("path", "/api/users")]).await;
    assert_eq!(users.current_limit, limit("", 1, Unit::Hour));
    assert_eq!(
        ask_one(&mut client, "edge", &[("path", "/api/users")])
            .await
            .code,
        OVER
    );
    assert_eq!(
        ask_one(&mut client, "edge", &[("path", "/api/orders")])
            .await
            .code,
        OK
    );
    let other = ask_one(&mut client, "edge", &[("path", "/static/app.js")]).await;
    assert_eq!((other.code, other.current_limit), (OK, None));
}

// ---------------------------------------------------------------------------------------------
// Statuses and time

#[tokio::test]
async fn limit_remaining_and_duration_until_reset_follow_the_clock() {
    let (mut client, clock, _) = start(
        "domain: edge\ndescriptors:\n  - key: user\n    rate_limit: { name: per_user, unit: minute, requests_per_unit: 3 }\n",
    )
    .await;
    let alice = [("user", "alice")];

    let first = ask_one(&mut client, "edge", &alice).await;
    assert_eq!(first.current_limit, limit("per_user", 3, Unit::Minute));
    assert_eq!((first.limit_remaining, seconds(&first)), (2, Some(60)));

    clock.advance(Duration::from_secs(20));
    let second = ask_one(&mut client, "edge", &alice).await;
    assert_eq!((second.limit_remaining, seconds(&second)), (1, Some(40)));

    let third = ask_one(&mut client, "edge", &alice).await;
    assert_eq!((third.code, third.limit_remaining), (OK, 0));

    // Over the limit: the time until the same hit is allowed, rounded up to whole seconds.
    clock.advance(Duration::from_millis(500));
    let denied = ask(&mut client, request("edge", vec![descriptor(&alice)])).await;
    assert_eq!(denied.overall_code, OVER);
    let status = &denied.statuses[0];
    assert_eq!((status.code, status.limit_remaining), (OVER, 0));
    assert_eq!(seconds(status), Some(40)); // 39.5 s
    assert_eq!(status.duration_until_reset.map(|d| d.nanos), Some(0));

    clock.advance(Duration::from_millis(39_500));
    let again = ask_one(&mut client, "edge", &alice).await;
    assert_eq!(
        (again.code, again.limit_remaining, seconds(&again)),
        (OK, 2, Some(60))
    );
}

#[tokio::test]
async fn one_status_per_descriptor_and_overall_over_limit_if_any_is() {
    let (mut client, _, _) = start(
        r#"
domain: edge
descriptors:
  - key: remote_address
    rate_limit: { unit: second, requests_per_unit: 1 }
  - key: generic_key
    value: global
    rate_limit: { unit: second, requests_per_unit: 100 }
"#,
    )
    .await;
    let descriptors = || {
        vec![
            descriptor(&[("generic_key", "global")]),
            descriptor(&[("remote_address", "203.0.113.7")]),
            descriptor(&[("unmatched", "x")]),
        ]
    };
    let first = ask(&mut client, request("edge", descriptors())).await;
    assert_eq!(first.overall_code, OK);
    let codes: Vec<i32> = first.statuses.iter().map(|s| s.code).collect();
    assert_eq!(codes, [OK, OK, OK]);
    assert_eq!(first.statuses[0].limit_remaining, 99);
    assert_eq!(first.statuses[2].current_limit, None);

    let second = ask(&mut client, request("edge", descriptors())).await;
    assert_eq!(second.overall_code, OVER);
    let codes: Vec<i32> = second.statuses.iter().map(|s| s.code).collect();
    assert_eq!(codes, [OK, OVER, OK]);
    assert_eq!(second.statuses[0].limit_remaining, 98);

    // All or none: the refused request's charge to the global limit was given back.
    let check = ask(
        &mut client,
        request(
            "edge",
            vec![descriptor_adding(&[("generic_key", "global")], 0)],
        ),
    )
    .await;
    assert_eq!(check.statuses[0].limit_remaining, 99);
}

// ---------------------------------------------------------------------------------------------
// hits_addend

const HUNDRED: &str = "domain: edge\ndescriptors:\n  - key: user\n    rate_limit: { unit: minute, requests_per_unit: 10 }\n";

#[tokio::test]
async fn request_hits_addend_charges_every_descriptor_and_zero_means_one() {
    let (mut client, _, _) = start(HUNDRED).await;
    let mut req = request("edge", vec![descriptor(&[("user", "alice")])]);

    req.hits_addend = 0; // unset: 1
    assert_eq!(
        ask(&mut client, req.clone()).await.statuses[0].limit_remaining,
        9
    );

    req.hits_addend = 4;
    assert_eq!(
        ask(&mut client, req.clone()).await.statuses[0].limit_remaining,
        5
    );

    req.hits_addend = 6; // 6 > 5: refused, charges nothing
    let denied = ask(&mut client, req.clone()).await;
    assert_eq!(denied.overall_code, OVER);
    assert_eq!(denied.statuses[0].limit_remaining, 5);

    req.hits_addend = 5;
    assert_eq!(
        ask(&mut client, req.clone()).await.statuses[0].limit_remaining,
        0
    );

    // A cost no window could ever allow is over the limit, not an error.
    req.hits_addend = 11;
    let never = ask(
        &mut client,
        request("edge", vec![descriptor(&[("user", "bob")])]),
    )
    .await;
    assert_eq!(never.statuses[0].limit_remaining, 9);
    let never = ask(&mut client, {
        let mut r = request("edge", vec![descriptor(&[("user", "bob")])]);
        r.hits_addend = 11;
        r
    })
    .await;
    assert_eq!(
        (never.overall_code, never.statuses[0].limit_remaining),
        (OVER, 9)
    );
}

#[tokio::test]
async fn descriptor_hits_addend_overrides_the_request_and_zero_only_checks() {
    let (mut client, _, observed) = start(HUNDRED).await;

    // The request says 5; the first descriptor says 2, the second (another user) inherits 5.
    let mut req = request(
        "edge",
        vec![
            descriptor_adding(&[("user", "alice")], 2),
            descriptor(&[("user", "bob")]),
        ],
    );
    req.hits_addend = 5;
    let response = ask(&mut client, req).await;
    assert_eq!(response.statuses[0].limit_remaining, 8);
    assert_eq!(response.statuses[1].limit_remaining, 5);

    // 0: a check, nothing charged.
    for _ in 0..3 {
        let check = ask(
            &mut client,
            request("edge", vec![descriptor_adding(&[("user", "alice")], 0)]),
        )
        .await;
        assert_eq!(
            (check.overall_code, check.statuses[0].limit_remaining),
            (OK, 8)
        );
    }
    observed.take();

    // Spend the rest; a check now reports over the limit, still charging nothing.
    let spend = request("edge", vec![descriptor_adding(&[("user", "alice")], 8)]);
    assert_eq!(ask(&mut client, spend).await.statuses[0].limit_remaining, 0);
    let check = ask(
        &mut client,
        request("edge", vec![descriptor_adding(&[("user", "alice")], 0)]),
    )
    .await;
    assert_eq!(check.overall_code, OVER);
    assert_eq!(check.statuses[0].current_limit, limit("", 10, Unit::Minute));
    assert_eq!(
        observed.take(),
        [
            ("envoy:edge:user".to_owned(), Verdict::Allowed),
            ("envoy:edge:user".to_owned(), Verdict::OverLimit),
        ]
    );
}

#[tokio::test]
async fn negative_hits_give_units_back() {
    let (mut client, _, observed) = start(HUNDRED).await;
    let spend = request("edge", vec![descriptor_adding(&[("user", "alice")], 10)]);
    assert_eq!(ask(&mut client, spend).await.statuses[0].limit_remaining, 0);

    let mut give_back = descriptor_adding(&[("user", "alice")], 3);
    give_back.is_negative_hits = true;
    let response = ask(&mut client, request("edge", vec![give_back])).await;
    assert_eq!(
        (response.overall_code, response.statuses[0].limit_remaining),
        (OK, 3)
    );
    assert_eq!(
        observed.take().last().map(|(_, v)| *v),
        Some(Verdict::Refunded)
    );
}

// ---------------------------------------------------------------------------------------------
// shadow_mode, replaces, unlimited, strategies, request-supplied limits

#[tokio::test]
async fn shadow_mode_counts_but_reports_ok() {
    let (mut client, _, observed) = start(
        "domain: edge\ndescriptors:\n  - key: path\n    value: /beta\n    shadow_mode: true\n    rate_limit: { unit: hour, requests_per_unit: 1 }\n",
    )
    .await;
    let beta = [("path", "/beta")];
    let first = ask_one(&mut client, "edge", &beta).await;
    assert_eq!((first.code, first.limit_remaining), (OK, 0));

    let second = ask(&mut client, request("edge", vec![descriptor(&beta)])).await;
    assert_eq!(second.overall_code, OK);
    assert_eq!(second.statuses[0].code, OK);
    assert_eq!(second.statuses[0].current_limit, limit("", 1, Unit::Hour));
    assert_eq!(seconds(&second.statuses[0]), Some(3600));
    assert_eq!(
        observed.take(),
        [
            ("envoy:edge:path=%2Fbeta".to_owned(), Verdict::Allowed),
            (
                "envoy:edge:path=%2Fbeta".to_owned(),
                Verdict::ShadowOverLimit
            ),
        ]
    );
}

const REPLACES: &str = r#"
domain: edge
descriptors:
  - key: remote_address
    rate_limit:
      name: per_ip
      unit: minute
      requests_per_unit: 1
  - key: plan
    value: premium
    rate_limit:
      name: premium
      unit: minute
      requests_per_unit: 100
      replaces:
        - name: per_ip
  - key: plan
    value: internal
    rate_limit:
      unlimited: true
      replaces:
        - name: per_ip
        - name: premium
"#;

#[tokio::test]
async fn replaces_removes_the_named_limits_of_other_descriptors() {
    let (mut client, _, observed) = start(REPLACES).await;
    let ip = || descriptor(&[("remote_address", "203.0.113.7")]);

    // A premium client is held to its plan, not to the per-address limit.
    for _ in 0..3 {
        let response = ask(
            &mut client,
            request("edge", vec![ip(), descriptor(&[("plan", "premium")])]),
        )
        .await;
        assert_eq!(response.overall_code, OK);
        assert_eq!(response.statuses[0].current_limit, None);
        assert_eq!(
            response.statuses[1].current_limit,
            limit("premium", 100, Unit::Minute)
        );
    }
    assert!(
        observed
            .take()
            .iter()
            .all(|(policy, _)| policy == "envoy:edge:plan=premium")
    );

    // The per-address limit was not counted meanwhile.
    assert_eq!(
        ask(&mut client, request("edge", vec![ip()]))
            .await
            .overall_code,
        OK
    );
    assert_eq!(
        ask(&mut client, request("edge", vec![ip()]))
            .await
            .overall_code,
        OVER
    );
    observed.take();

    // Unlimited replaces both, and is always OK.
    let response = ask(
        &mut client,
        request(
            "edge",
            vec![
                ip(),
                descriptor(&[("plan", "premium")]),
                descriptor(&[("plan", "internal")]),
            ],
        ),
    )
    .await;
    assert_eq!(response.overall_code, OK);
    let internal = &response.statuses[2];
    assert_eq!((internal.code, internal.limit_remaining), (OK, u32::MAX));
    assert_eq!(internal.current_limit, None);
    assert_eq!(response.statuses[1].current_limit, None);
    assert_eq!(
        observed.take(),
        [("envoy:edge:plan=internal".to_owned(), Verdict::Unlimited)]
    );
}

#[tokio::test]
async fn a_rate_limit_may_choose_a_tollgate_strategy() {
    let (mut client, clock, _) = start(
        r#"
domain: edge
descriptors:
  - key: api_key
    rate_limit:
      unit: second
      requests_per_unit: 1
      strategy: token-bucket
      burst: 3
"#,
    )
    .await;
    let key = [("api_key", "k1")];
    let remaining: Vec<u32> = {
        let mut v = Vec::new();
        for _ in 0..3 {
            v.push(ask_one(&mut client, "edge", &key).await.limit_remaining);
        }
        v
    };
    assert_eq!(remaining, [2, 1, 0]);
    let denied = ask_one(&mut client, "edge", &key).await;
    assert_eq!((denied.code, seconds(&denied)), (OVER, Some(1)));
    assert_eq!(denied.current_limit, limit("", 1, Unit::Second));

    clock.advance(Duration::from_secs(1));
    assert_eq!(ask_one(&mut client, "edge", &key).await.code, OK);
    assert_eq!(ask_one(&mut client, "edge", &key).await.code, OVER);
}

#[tokio::test]
async fn a_descriptor_may_supply_its_own_limit() {
    let (mut client, _, observed) = start(HUNDRED).await;
    let supplied = || RateLimitDescriptor {
        limit: Some(RateLimitOverride {
            requests_per_unit: 1,
            unit: 3, // hour
        }),
        ..descriptor(&[("user", "alice")])
    };
    let first = ask(&mut client, request("edge", vec![supplied()])).await;
    assert_eq!(first.statuses[0].current_limit, limit("", 1, Unit::Hour));
    assert_eq!(first.overall_code, OK);
    assert_eq!(
        ask(&mut client, request("edge", vec![supplied()]))
            .await
            .overall_code,
        OVER
    );
    // The configured limit's count is its own.
    assert_eq!(
        ask_one(&mut client, "edge", &[("user", "alice")])
            .await
            .limit_remaining,
        9
    );
    assert_eq!(
        observed.take()[0].0,
        "envoy-override:edge|1/hour (fixed-window)"
    );

    let bad_unit = RateLimitDescriptor {
        limit: Some(RateLimitOverride {
            requests_per_unit: 1,
            unit: 0,
        }),
        ..descriptor(&[("user", "alice")])
    };
    let err = client
        .should_rate_limit(request("edge", vec![bad_unit]))
        .await
        .expect_err("unknown unit");
    assert_eq!(err.code(), tonic::Code::InvalidArgument);
}

#[tokio::test]
async fn malformed_requests_are_invalid_arguments() {
    let (mut client, _, _) = start(HUNDRED).await;
    let err = client
        .should_rate_limit(request("", vec![descriptor(&[("user", "a")])]))
        .await
        .expect_err("empty domain");
    assert_eq!(err.code(), tonic::Code::InvalidArgument);
    let err = client
        .should_rate_limit(request("edge", vec![]))
        .await
        .expect_err("no descriptors");
    assert_eq!(err.code(), tonic::Code::InvalidArgument);
}

// ---------------------------------------------------------------------------------------------
// A failing store

#[tokio::test]
async fn a_failing_store_is_unavailable_so_failure_mode_deny_decides() {
    let flaky = FlakyStore::new();
    let (mut client, _, observed) = start_on(flaky.clone(), HUNDRED).await;
    let alice = || request("edge", vec![descriptor(&[("user", "alice")])]);
    assert_eq!(
        ask(&mut client, alice()).await.statuses[0].limit_remaining,
        9
    );

    flaky.set_down(true);
    let err = client
        .should_rate_limit(alice())
        .await
        .expect_err("store down");
    assert_eq!(err.code(), tonic::Code::Unavailable);
    assert!(
        err.message().contains("flaky store is down"),
        "{}",
        err.message()
    );
    // A descriptor without a limit needs no store.
    let response = ask(
        &mut client,
        request("edge", vec![descriptor(&[("x", "y")])]),
    )
    .await;
    assert_eq!(response.overall_code, OK);

    flaky.set_down(false);
    assert_eq!(
        ask(&mut client, alice()).await.statuses[0].limit_remaining,
        8
    );
    assert_eq!(observed.take().len(), 2); // the failed call reported nothing
}

// ---------------------------------------------------------------------------------------------
// Configuration errors

fn error(yaml: &str) -> ConfigError {
    match EnvoyConfig::from_yaml(yaml, "ratelimit.yaml") {
        Ok(_) => panic!("expected an error for:\n{yaml}"),
        Err(err) => err,
    }
}

#[test]
fn an_unknown_unit_names_file_line_and_field() {
    let err = error(
        "domain: edge\ndescriptors:\n  - key: a\n    rate_limit:\n      requests_per_unit: 1\n      unit: minit\n",
    );
    assert_eq!(
        err.to_string(),
        "ratelimit.yaml:6: descriptors[0].rate_limit.unit: unknown unit \"minit\"; \
         expected second, minute, hour, day, week, month or year"
    );
    assert_eq!(err.file(), "ratelimit.yaml");
    assert_eq!(err.line(), Some(6));
    assert_eq!(err.field(), Some("descriptors[0].rate_limit.unit"));
}

#[test]
fn unknown_fields_are_errors_so_a_typo_never_disables_a_limit() {
    // A typo in the rate limit.
    let err = error(
        "domain: edge\ndescriptors:\n  - key: a\n    rate_limit:\n      unit: second\n      request_per_unit: 5\n",
    );
    assert_eq!(err.line(), Some(6));
    assert_eq!(err.field(), Some("descriptors[0].rate_limit"));
    assert!(
        err.message()
            .starts_with("unknown field `request_per_unit`, expected one of"),
        "{err}"
    );

    // A typo in a nested descriptor.
    let err = error(
        "domain: edge\ndescriptors:\n  - key: a\n    descriptors:\n      - key: b\n        shadowmode: true\n",
    );
    assert_eq!(err.line(), Some(6));
    assert_eq!(err.field(), Some("descriptors[0].descriptors[0]"));
    assert!(
        err.message().starts_with("unknown field `shadowmode`"),
        "{err}"
    );

    // A typo at the top.
    let err = error("domain: edge\ndescriptor:\n  - key: a\n");
    assert_eq!(err.line(), Some(2));
    assert!(
        err.message().starts_with("unknown field `descriptor`"),
        "{err}"
    );
}

#[test]
fn incomplete_or_contradictory_rate_limits_are_errors() {
    let err =
        error("domain: edge\ndescriptors:\n  - key: a\n    rate_limit:\n      unit: second\n");
    assert_eq!(err.line(), Some(5));
    assert_eq!(err.field(), Some("descriptors[0].rate_limit"));
    assert!(
        err.message()
            .starts_with("missing field `requests_per_unit`"),
        "{err}"
    );

    let err =
        error("domain: edge\ndescriptors:\n  - key: a\n    rate_limit: { requests_per_unit: 3 }\n");
    assert!(err.message().starts_with("missing field `unit`"), "{err}");

    // `rate_limit:` with nothing under it is not "no limit".
    let err = error("domain: edge\ndescriptors:\n  - key: a\n    rate_limit:\n  - key: b\n");
    assert_eq!(err.field(), Some("descriptors[0].rate_limit"));
    assert!(err.message().starts_with("missing field `unit`"), "{err}");

    let err = error(
        "domain: edge\ndescriptors:\n  - key: a\n    rate_limit: { unlimited: true, unit: second }\n",
    );
    assert_eq!(err.line(), Some(4));
    assert_eq!(
        err.message(),
        "unlimited: true takes no unit; remove it or unlimited"
    );

    let err = error(
        "domain: edge\ndescriptors:\n  - key: a\n    rate_limit: { unit: second, requests_per_unit: 3, strategy: leaky-bucket }\n",
    );
    assert_eq!(err.field(), Some("descriptors[0].rate_limit.strategy"));
    assert!(
        err.message()
            .starts_with("unknown strategy \"leaky-bucket\""),
        "{err}"
    );

    let err = error(
        "domain: edge\ndescriptors:\n  - key: a\n    rate_limit: { unit: second, requests_per_unit: 3, burst: 5 }\n",
    );
    assert_eq!(
        err.message(),
        "burst applies to token-bucket only, not fixed-window"
    );

    let err = error(
        "domain: edge\ndescriptors:\n  - key: a\n    rate_limit: { unit: second, requests_per_unit: -3 }\n",
    );
    assert_eq!(
        err.field(),
        Some("descriptors[0].rate_limit.requests_per_unit")
    );

    let err = error(
        "domain: edge\ndescriptors:\n  - key: a\n    rate_limit:\n      name: a\n      unit: second\n      requests_per_unit: 1\n      replaces: [{ name: a }]\n",
    );
    assert_eq!(err.line(), Some(5));
    assert_eq!(err.message(), "replaces its own name \"a\"");
}

#[test]
fn keys_domains_and_siblings_are_checked() {
    let err = error("domain: edge\ndescriptors:\n  - key: \"\"\n");
    assert_eq!(
        err.to_string(),
        "ratelimit.yaml:3: descriptors[0].key: must not be empty"
    );

    let err = error("descriptors: []\n");
    assert!(err.message().starts_with("missing field `domain`"), "{err}");

    let err = error(
        "domain: edge\ndescriptors:\n  - key: a\n    value: x\n  - key: b\n  - key: a\n    value: x\n",
    );
    assert_eq!(err.line(), Some(6));
    assert_eq!(err.field(), Some("descriptors[2]"));
    assert_eq!(
        err.message(),
        "duplicate descriptor: key \"a\" with value \"x\" is already descriptor 0 of this list"
    );

    let err = error("domain: edge\n---\ndomain: other\n---\ndomain: edge\n");
    assert_eq!(err.line(), Some(5));
    assert!(
        err.message().starts_with("duplicate domain \"edge\""),
        "{err}"
    );

    let err = error("- edge\n");
    assert_eq!(err.line(), Some(1));
    assert!(err.message().starts_with("invalid type"), "{err}");
}

#[test]
fn replaces_must_name_a_rate_limit_of_the_domain() {
    let err = error(
        r#"domain: edge
descriptors:
  - key: a
    rate_limit:
      name: per_a
      unit: second
      requests_per_unit: 1
  - key: b
    rate_limit:
      unit: second
      requests_per_unit: 1
      replaces:
        - name: per_a
        - name: per_x
"#,
    );
    assert_eq!(
        err.to_string(),
        "ratelimit.yaml:14: descriptors[1].rate_limit.replaces[1].name: \
         no rate limit of this domain is named \"per_x\"; replaces must name a rate limit's `name`"
    );
}

#[test]
fn yaml_syntax_errors_have_a_line() {
    let err = error("domain: edge\ndescriptors:\n  - key: a\n   value: b\n");
    assert_eq!(err.file(), "ratelimit.yaml");
    assert!(err.line().is_some(), "{err}");
    assert!(err.to_string().starts_with("ratelimit.yaml:"), "{err}");
}

#[test]
fn several_documents_or_a_list_hold_several_domains() {
    let config = EnvoyConfig::from_yaml(
        "domain: a\ndescriptors:\n  - key: k\n    rate_limit: { unit: day, requests_per_unit: 1 }\n---\ndomain: b\n",
        "rl.yaml",
    )
    .expect("valid");
    assert_eq!(config.domains().collect::<Vec<_>>(), ["a", "b"]);

    let config = EnvoyConfig::from_yaml(
        "- domain: a\n- domain: b\n  descriptors:\n    - key: k\n      value: 42\n      rate_limit: { unit: WEEK, requests_per_unit: 7 }\n",
        "rl.yaml",
    )
    .expect("valid");
    let policies: Vec<String> = config
        .policies()
        .map(|(name, policy)| format!("{name}: {policy}"))
        .collect();
    assert_eq!(policies, ["envoy:b:k=42: 7/7 days (fixed-window)"]);

    // Line numbers count from the top of the file, across documents.
    let err = error(
        "domain: a\n---\ndomain: b\ndescriptors:\n  - key: k\n    rate_limit: { unit: fortnight, requests_per_unit: 1 }\n",
    );
    assert_eq!(err.line(), Some(6));
    assert_eq!(err.field(), Some("descriptors[0].rate_limit.unit"));

    // In a list, the path starts with the domain's index.
    let err = error(
        "- domain: a\n- domain: b\n  descriptors:\n    - key: k\n      rate_limit: { unit: second }\n",
    );
    assert_eq!(err.field(), Some("[1].descriptors[0].rate_limit"));

    // A file without a domain is a mistake (a truncated file must not allow everything).
    let err = error("# nothing yet\n");
    assert_eq!(
        err.to_string(),
        "ratelimit.yaml: no domain; expected `domain:` and `descriptors:`"
    );
}

#[test]
fn every_prefix_of_a_file_is_an_answer_never_a_panic() {
    let text = std::fs::read_to_string(concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/tests/envoy/ratelimit.yaml"
    ))
    .expect("fixture");
    for (end, _) in text.char_indices() {
        let prefix = &text[..end];
        if let Err(err) = EnvoyConfig::from_yaml(prefix, "rl.yaml") {
            assert!(err.to_string().starts_with("rl.yaml"), "{err}");
        }
        // Lines cut short, and the file mangled one byte at a time.
        let mangled = format!("{prefix}\u{0}{}", &text[end..]);
        let _ = EnvoyConfig::from_yaml(&mangled, "rl.yaml");
    }
}

#[test]
fn the_fixture_loads_and_lists_its_policies() {
    let path = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/envoy/ratelimit.yaml");
    let config = EnvoyConfig::load(path).expect("valid fixture");
    let listing: Vec<String> = config.limits().iter().map(ToString::to_string).collect();
    assert_eq!(
        listing,
        [
            "envoy:edge:remote_address: 60/minute (fixed-window), name per_ip",
            "envoy:edge:tenant=acme/user: 10/second (token-bucket, burst 20), name acme_user",
            "envoy:edge:plan=internal: unlimited, replaces per_ip, acme_user",
            "envoy:edge:path=%2Fbeta: 1000/hour (sliding-window-counter), shadow mode",
            "envoy:internal:generic_key=jobs*: 5/day (fixed-window)",
        ]
    );
    assert_eq!(config.policies().count(), 4);

    let err = EnvoyConfig::load(concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/tests/envoy/missing.yaml"
    ))
    .expect_err("no such file");
    assert!(
        err.to_string().contains("missing.yaml: cannot read: "),
        "{err}"
    );
}
