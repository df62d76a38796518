//! The IETF fields list every limit a request met, each named as the user declared it (or by
//! its rate), as valid structured-field lists; the legacy fields describe the closest.

use super::*;

/// `(name, [(key, value)])` members, as [`sf_list`] gives them.
fn members(items: &[(&str, &[(&str, i64)])]) -> Vec<(String, Vec<(String, i64)>)> {
    items
        .iter()
        .map(|(name, params)| {
            let params = params.iter().map(|(k, v)| ((*k).to_owned(), *v)).collect();
            ((*name).to_owned(), params)
        })
        .collect()
}

fn field<'a>(response: &'a Response, name: &str) -> &'a str {
    header(response, name).unwrap_or_else(|| panic!("no {name} field"))
}

#[tokio::test]
async fn every_limit_the_request_met_is_listed_under_its_name() {
    let clock = ManualClock::new();
    let limiter = builder(&clock)
        .application_limit(Limit::new("1000/hour").name("app"))
        .route("/a", Limit::new("5/minute").name("login"))
        .route("/a", "20/hour")
        .build()
        .expect("valid");
    let app = routes(&limiter);
    let first = send(&app, request(Method::GET, "/a", ALICE, &[])).await;
    assert_eq!(
        field(&first, "ratelimit-policy"),
        r#""app";q=1000;w=3600, "login";q=5;w=60, "20/hour";q=20;w=3600"#
    );
    assert_eq!(
        sf_list(field(&first, "ratelimit-policy")),
        members(&[
            ("app", &[("q", 1000), ("w", 3600)]),
            ("login", &[("q", 5), ("w", 60)]),
            ("20/hour", &[("q", 20), ("w", 3600)]),
        ])
    );
    assert_eq!(
        sf_list(field(&first, "ratelimit")),
        members(&[
            ("app", &[("r", 999), ("t", 3600)]),
            ("login", &[("r", 4), ("t", 60)]),
            ("20/hour", &[("r", 19), ("t", 3600)]),
        ])
    );
    // The legacy fields describe the closest: `login`.
    assert_eq!(header(&first, "x-ratelimit-limit"), Some("5"));
    assert_eq!(header(&first, "x-ratelimit-remaining"), Some("4"));
    assert_eq!(statuses(&app, "/a", ALICE, 4).await, [200; 4]);
    // Denied by `login`: the fields describe it alone (the others' charges were given back).
    let denied = send(&app, request(Method::GET, "/a", ALICE, &[])).await;
    assert_eq!(denied.status(), 429);
    assert_eq!(field(&denied, "ratelimit-policy"), r#""login";q=5;w=60"#);
    assert_eq!(field(&denied, "ratelimit"), r#""login";r=0;t=60"#);
    // Another route meets the application limit alone, which counted five requests.
    let other = send(&app, request(Method::GET, "/b", ALICE, &[])).await;
    assert_eq!(field(&other, "ratelimit"), r#""app";r=994;t=3600"#);
}

#[tokio::test]
async fn headers_never_name_a_route_or_a_scope_but_breaches_do() {
    let clock = ManualClock::new();
    let breaches: Arc<Mutex<Vec<String>>> = Arc::default();
    let limiter = builder(&clock)
        .default_limit("100/minute")
        .route("/items/{id}", "1/minute")
        .route("/b", Limit::new("10/hour").shared("uploads"))
        .on_breach({
            let breaches = Arc::clone(&breaches);
            move |_, breach| {
                breaches
                    .lock()
                    .expect("lock")
                    .push(breach.limit_name().to_owned())
            }
        })
        .build()
        .expect("valid");
    let app = routes(&limiter);
    let names = |response: &Response| -> Vec<String> {
        sf_list(field(response, "ratelimit-policy"))
            .into_iter()
            .map(|(name, _)| name)
            .collect()
    };
    let item = send(&app, request(Method::GET, "/items/7", ALICE, &[])).await;
    assert_eq!(names(&item), ["1/minute"]);
    let shared = send(&app, request(Method::GET, "/b", ALICE, &[])).await;
    assert_eq!(
        names(&shared),
        ["uploads"],
        "a shared name is declared by the user"
    );
    let default = send(&app, request(Method::GET, "/a", ALICE, &[])).await;
    assert_eq!(names(&default), ["100/minute"]);
    let denied = send(&app, request(Method::GET, "/items/8", ALICE, &[])).await;
    assert_eq!(denied.status(), 429);
    assert_eq!(names(&denied), ["1/minute"]);
    // The server's own logs still know where the limit was declared.
    assert_eq!(*breaches.lock().expect("lock"), ["/items/{id}"]);
}

#[tokio::test]
async fn names_are_escaped_and_the_fields_stay_valid_lists() {
    let clock = ManualClock::new();
    let awkward = r#"a "quoted", \back\slashed; name=1 é"#;
    let limiter = builder(&clock)
        .application_limit(Limit::new("100/hour").name(awkward))
        .route("/a", Limit::new("5/minute").name("plain"))
        .build()
        .expect("valid");
    let app = routes(&limiter);
    let response = send(&app, request(Method::GET, "/a", ALICE, &[])).await;
    // Quotes and backslashes are escaped; what is not printable ASCII becomes `?`.
    let expected = r#"a "quoted", \back\slashed; name=1 ?"#;
    assert_eq!(
        sf_list(field(&response, "ratelimit-policy")),
        members(&[
            (expected, &[("q", 100), ("w", 3600)]),
            ("plain", &[("q", 5), ("w", 60)]),
        ])
    );
    assert_eq!(
        sf_list(field(&response, "ratelimit")),
        members(&[
            (expected, &[("r", 99), ("t", 3600)]),
            ("plain", &[("r", 4), ("t", 60)]),
        ])
    );
}

#[tokio::test]
async fn two_limits_of_one_name_are_told_apart() {
    let clock = ManualClock::new();
    let limiter = builder(&clock)
        .application_limit("100/minute")
        .default_limit("100/minute")
        .route("/a", Limit::new("5/minute").name("api"))
        .route("/a", Limit::new("50/hour").name("api"))
        .build()
        .expect("valid");
    let app = routes(&limiter);
    let unnamed = send(&app, request(Method::GET, "/b", ALICE, &[])).await;
    assert_eq!(
        field(&unnamed, "ratelimit-policy"),
        r#""100/minute";q=100;w=60, "100/minute#2";q=100;w=60"#
    );
    assert_eq!(
        field(&unnamed, "ratelimit"),
        r#""100/minute";r=99;t=60, "100/minute#2";r=99;t=60"#
    );
    let named = send(&app, request(Method::GET, "/a", ALICE, &[])).await;
    let names: Vec<String> = sf_list(field(&named, "ratelimit"))
        .into_iter()
        .map(|(name, _)| name)
        .collect();
    assert_eq!(names, ["100/minute", "api", "api#2"]);
}

#[tokio::test]
async fn a_dynamic_limit_is_named_by_the_rate_it_chose() {
    let clock = ManualClock::new();
    let by_plan = Limit::dynamic(|parts| match parts.headers.get("x-plan") {
        Some(plan) if plan == "paid" => Some("100/minute".to_owned()),
        _ => Some("10/minute".to_owned()),
    });
    let limiter = builder(&clock).route("/a", by_plan).build().expect("valid");
    let app = routes(&limiter);
    let free = send(&app, request(Method::GET, "/a", ALICE, &[])).await;
    assert_eq!(field(&free, "ratelimit"), r#""10/minute";r=9;t=60"#);
    let paid = send(&app, request(Method::GET, "/a", BOB, &[("x-plan", "paid")])).await;
    assert_eq!(field(&paid, "ratelimit"), r#""100/minute";r=99;t=60"#);
}

#[tokio::test]
async fn legacy_fields_describe_the_closest_whatever_the_list() {
    let clock = ManualClock::new();
    let limiter = HttpLimiter::builder()
        .clock(clock.clone())
        .headers(HeaderStyle::Legacy)
        .application_limit(Limit::new("3/minute").name("app"))
        .route("/a", Limit::new("10/minute").name("a"))
        .build()
        .expect("valid");
    let app = routes(&limiter);
    let response = send(&app, request(Method::GET, "/a", ALICE, &[])).await;
    assert_eq!(header(&response, "x-ratelimit-limit"), Some("3"));
    assert_eq!(header(&response, "x-ratelimit-remaining"), Some("2"));
    assert!(header(&response, "ratelimit").is_none());
}
