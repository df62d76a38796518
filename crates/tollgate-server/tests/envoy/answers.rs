//! How requests are answered: matching, statuses, costs, shadow mode, replaces, supplied
//! limits and store failures.

use super::*;

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

#[tokio::test]
async fn a_requests_give_backs_come_before_its_charges() {
    let (mut client, _, _) = start(HUNDRED).await;
    let spend = request("edge", vec![descriptor_adding(&[("user", "alice")], 10)]);
    assert_eq!(ask(&mut client, spend).await.statuses[0].limit_remaining, 0);
    // The charge is written first, but the give-back makes room for it.
    let mut give_back = descriptor_adding(&[("user", "alice")], 2);
    give_back.is_negative_hits = true;
    let both = request(
        "edge",
        vec![descriptor_adding(&[("user", "alice")], 2), give_back],
    );
    let response = ask(&mut client, both).await;
    assert_eq!(response.overall_code, OK, "{response:?}");
    assert_eq!(response.statuses[0].limit_remaining, 0);
    assert_eq!(
        response.statuses[1].limit_remaining, 2,
        "the state after the give-back"
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

/// The store fails after the admission admitted alice, while the status of a shadow
/// descriptor whose cost can never fit is read: no answer, so alice's charge is given back.
#[tokio::test]
async fn a_request_left_unanswered_gives_back_what_it_charged() {
    let flaky = FlakyStore::new();
    let yaml = "domain: edge\ndescriptors:\n  - key: user\n    rate_limit: { unit: minute, requests_per_unit: 10 }\n  - key: path\n    shadow_mode: true\n    rate_limit: { unit: minute, requests_per_unit: 10 }\n";
    let (mut client, _, _) = start_on(flaky.clone(), yaml).await;
    let both = request(
        "edge",
        vec![
            descriptor(&[("user", "alice")]),
            descriptor_adding(&[("path", "/x")], 1_000),
        ],
    );
    flaky.fail_after(1);
    let err = client
        .should_rate_limit(both)
        .await
        .expect_err("store failed");
    assert_eq!(err.code(), tonic::Code::Unavailable);
    let check = request("edge", vec![descriptor_adding(&[("user", "alice")], 0)]);
    assert_eq!(
        ask(&mut client, check).await.statuses[0].limit_remaining,
        10
    );
}
