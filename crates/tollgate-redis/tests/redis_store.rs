//! The Redis store's contract: key layout (long keys digested) and expiry, NOSCRIPT
//! recovery, reset, refunds, server time, amounts at the bound, errors and storage URIs; bans
//! shared by every client, kept in the key's value until they end, lifted by a reset; late
//! charges from every client counted.

mod support;

use std::time::Duration;

use tollgate::{Ban, Limiter, MAX_AMOUNT, MAX_LOG_AMOUNT, Policy, Rate, Store, Strategy};
use tollgate_redis::{AnyStore, MAX_PLAIN_KEY_LEN, RedisStore};

#[tokio::test]
async fn keys_expire_once_the_longest_window_has_passed() {
    let server = support::RedisServer::start();
    let store = RedisStore::connect(&server.uri()).await.expect("connect");
    let limiter = Limiter::new(store);
    for strategy in Strategy::ALL {
        let policy = limiter.policy(
            strategy.name(),
            Policy::new(strategy, "5/second; 10/2 seconds".parse().expect("rates"))
                .expect("policy"),
        );
        for key in 0..20u32 {
            for _ in 0..3 {
                policy.hit(&key).await.expect("hit");
            }
        }
    }
    let keys = server.cli(&["--scan", "--pattern", "tollgate:*"]);
    assert_eq!(keys.lines().count(), 80, "one key per (policy, key)");
    for key in keys.lines() {
        let ttl: i64 = server.cli(&["PTTL", key]).trim().parse().expect("pttl");
        // -2: gone already (a token bucket's key lives 600 ms, and a slow machine may take
        // longer to get here through one redis-cli per key).
        assert!(
            ttl == -2 || (1..=4_000).contains(&ttl),
            "{key}: ttl {ttl} ms"
        );
    }
    // The longest window is 2 s; the counter's state matters for two windows, 4 s.
    tokio::time::sleep(Duration::from_millis(4_200)).await;
    assert_eq!(
        server.cli(&["--scan", "--pattern", "tollgate:*"]).trim(),
        ""
    );
}

/// Issue 10: Redis kept client keys of any length (50 keys of 1.9 MB took 95 MB for a day).
/// A key longer than `MAX_PLAIN_KEY_LEN` is stored under its SHA-256 digest, 71 bytes;
/// long keys that differ in their last byte only still count apart; shorter keys are kept
/// as they are.
#[tokio::test]
async fn long_keys_are_stored_as_their_digest() {
    let server = support::RedisServer::start();
    let store = RedisStore::connect(&server.uri()).await.expect("connect");
    let policy = Policy::fixed_window(Rate::per_minute(1).into());
    let prefix = store.prepare("p", &policy).redis_key(b"").len();
    let p = Limiter::new(store).policy("p", policy);
    let megabyte = vec![b'x'; 1 << 20];
    let mut other = megabyte.clone();
    other[(1 << 20) - 1] = b'y';
    let most = "s".repeat(MAX_PLAIN_KEY_LEN);
    assert!(p.hit(&megabyte).await.expect("hit").allowed());
    assert!(!p.hit(&megabyte).await.expect("hit").allowed(), "one count");
    assert!(p.hit(&other).await.expect("hit").allowed(), "a count apart");
    assert!(p.hit(&most).await.expect("hit").allowed());
    assert!(!p.hit(&most).await.expect("hit").allowed());

    let keys = server.cli(&["--scan", "--pattern", "tollgate:p:*"]);
    let mut keys: Vec<&str> = keys.lines().collect();
    keys.sort_by_key(|key| key.len());
    let lengths: Vec<usize> = keys.iter().map(|key| key.len()).collect();
    assert_eq!(keys.len(), 3, "keys of {lengths:?} bytes");
    assert!(
        keys[0].ends_with(&format!(":{most}")),
        "kept as it is: {}",
        keys[0]
    );
    for digested in &keys[1..] {
        // Shown cut short: a failure must not print a megabyte.
        let shown = &digested[..digested.len().min(120)];
        let digest = &digested[prefix..];
        assert_eq!(digest.len(), 71, "{shown}...");
        assert!(digest.starts_with("sha256:"), "{shown}");
        assert!(
            digest[7..].bytes().all(|b| b.is_ascii_hexdigit()),
            "{shown}"
        );
    }
    assert_ne!(keys[1], keys[2]);
    // What Redis holds is small: a few hundred bytes a key, not a megabyte.
    for key in &keys {
        let usage: u64 = server
            .cli(&["MEMORY", "USAGE", key])
            .trim()
            .parse()
            .expect("usage");
        assert!(usage < 1_000, "{key}: {usage} bytes");
    }
}

/// A limit of exactly `MAX_AMOUNT` (`MAX_LOG_AMOUNT` for a log) takes all its units and then
/// denies, in every strategy, in Redis as in memory (`tollgate/tests/bounds.rs`).
#[tokio::test]
async fn a_limit_of_max_amount_denies_once_spent() {
    let server = support::RedisServer::start();
    let store = RedisStore::connect(&server.uri()).await.expect("connect");
    let limiter = Limiter::new(store);
    for strategy in Strategy::ALL {
        // 10^12 per 100 years: 321 units a second, slow enough for a token bucket.
        let most = match strategy {
            Strategy::SlidingWindowLog => MAX_LOG_AMOUNT,
            _ => MAX_AMOUNT,
        };
        let rates = format!("{most}/100 years");
        let policy = Policy::new(strategy, rates.parse().expect("in bounds")).expect("policy");
        let p = limiter.policy(strategy.name(), policy);
        let all = p.hit_cost("k", most).await.expect("hit");
        assert!(all.allowed(), "{strategy}");
        assert_eq!((all.limit(), all.remaining()), (most, 0), "{strategy}");
        for cost in [1, most] {
            let denied = p.hit_cost("k", cost).await.expect("hit");
            assert!(!denied.allowed(), "{strategy}: cost {cost}");
            let wait = denied.retry_after().expect("denied");
            assert!(
                wait > Duration::ZERO && wait <= denied.reset_after(),
                "{strategy}: {denied:?}"
            );
        }
        assert!(
            p.hit_cost("k", most + 1).await.is_err(),
            "{strategy}: over capacity"
        );
    }
}

#[tokio::test]
async fn scripts_are_reloaded_after_noscript() {
    let server = support::RedisServer::start();
    let store = RedisStore::connect(&server.uri()).await.expect("connect");
    let p = Limiter::new(store).policy("p", Policy::fixed_window(Rate::per_minute(2).into()));
    assert!(p.hit("k").await.expect("hit").allowed());
    server.cli(&["SCRIPT", "FLUSH"]);
    assert!(p.hit("k").await.expect("hit after flush").allowed());
    assert!(!p.hit("k").await.expect("hit").allowed());
}

#[tokio::test]
async fn reset_forgets_and_prefix_scopes_the_keys() {
    let server = support::RedisServer::start();
    let store = RedisStore::connect(&server.uri())
        .await
        .expect("connect")
        .with_prefix("app1:");
    let login =
        Limiter::new(store).policy("login", Policy::fixed_window(Rate::per_minute(1).into()));
    assert!(login.hit("alice").await.expect("hit").allowed());
    assert!(!login.hit("alice").await.expect("hit").allowed());
    let keys = server.cli(&["--scan", "--pattern", "app1:login:*:alice"]);
    assert_eq!(keys.lines().count(), 1, "{keys}");
    login.reset("alice").await.expect("reset");
    assert!(login.hit("alice").await.expect("hit").allowed());
}

/// Deduct-when against Redis's own clock, for every strategy and through `AnyStore` too: a
/// refunded hit makes room again, a refund never creates a key, and a key its refund leaves
/// fresh expires at once.
#[tokio::test]
async fn refunds_give_hits_back_in_redis() {
    let server = support::RedisServer::start();
    for uri in ["memory://".to_owned(), server.uri()] {
        let store = AnyStore::open(&uri).await.expect("open");
        let limiter = Limiter::new(store);
        for strategy in Strategy::ALL {
            let policy =
                Policy::new(strategy, "2/minute; 5/hour".parse().expect("rates")).expect("policy");
            let policy = limiter.policy(strategy.name(), policy);
            policy.refund("never-hit", 2).await.expect("refund");
            assert!(policy.hit("k").await.expect("hit").allowed());
            assert!(policy.hit("k").await.expect("hit").allowed());
            assert!(!policy.hit("k").await.expect("hit").allowed());
            policy.refund("k", 1).await.expect("refund");
            let again = policy.hit("k").await.expect("hit");
            assert!(again.allowed(), "{uri} {strategy}: the refund made room");
            assert_eq!(again.remaining(), 0, "{uri} {strategy}");
            policy.refund("k", 2).await.expect("refund");
            let peek = policy.peek("k").await.expect("peek");
            assert_eq!(peek.remaining(), 2, "{uri} {strategy}: fresh again");
        }
    }
    let never_hit = server.cli(&["--scan", "--pattern", "tollgate:*:never-hit"]);
    assert_eq!(never_hit.trim(), "", "a refund never creates a key");
    tokio::time::sleep(Duration::from_millis(20)).await;
    let left = server.cli(&["--scan", "--pattern", "tollgate:*"]);
    assert_eq!(left.trim(), "", "fresh states expire at once");
}

#[tokio::test]
async fn server_time_gives_exact_waits() {
    let server = support::RedisServer::start();
    let store = RedisStore::connect(&server.uri()).await.expect("connect");
    let p = Limiter::new(store).policy("p", Policy::fixed_window(Rate::per_minute(1).into()));
    p.hit("k").await.expect("hit");
    let denied = p.hit("k").await.expect("hit");
    let wait = denied.retry_after().expect("denied");
    assert!(
        wait > Duration::from_secs(59) && wait <= Duration::from_secs(60),
        "{wait:?}"
    );
}

#[tokio::test]
async fn a_dead_redis_is_an_error_within_the_timeout() {
    let mut server = support::RedisServer::start();
    let store = RedisStore::connect(&server.uri()).await.expect("connect");
    let policy = store.prepare("p", &Policy::fixed_window(Rate::per_minute(1).into()));
    server.kill();
    let started = std::time::Instant::now();
    let err = store
        .hit(&policy, b"k", tollgate::Timestamp::from_nanos(0), 1)
        .await
        .expect_err("redis is down");
    assert!(
        started.elapsed() < Duration::from_millis(500),
        "{:?}",
        started.elapsed()
    );
    assert!(err.to_string().starts_with("store "), "{err}");
    // Connecting to nothing fails too, with the address in the message.
    let port = support::free_port();
    let err = RedisStore::connect(&format!("redis://127.0.0.1:{port}"))
        .await
        .expect_err("nothing there");
    assert!(
        err.to_string().contains(&format!("127.0.0.1:{port}")),
        "{err}"
    );
}

#[tokio::test]
async fn storage_uris_open_the_right_store_or_say_what_is_wrong() {
    let server = support::RedisServer::start();
    assert!(matches!(
        AnyStore::open("memory://").await,
        Ok(AnyStore::Memory(_))
    ));
    assert!(matches!(
        AnyStore::open(&format!("{}/2", server.uri())).await,
        Ok(AnyStore::Redis(_))
    ));
    for (uri, expected) in [
        ("memory://x", "takes nothing after the scheme"),
        ("localhost:6379", "expected a scheme"),
        ("postgres://db", "unknown scheme \"postgres\""),
        ("redis://127.0.0.1:notaport", "invalid storage URI"),
        ("redis+cluster://", "at least one host:port"),
    ] {
        let err = AnyStore::open(uri).await.expect_err(uri);
        assert!(!err.is_unreachable(), "{uri}: {err}");
        let err = err.to_string();
        assert!(err.contains(expected), "{uri}: {err}");
        assert!(err.contains(uri), "{uri}: {err}");
    }
}

#[tokio::test]
async fn any_store_counts_like_the_store_it_names() {
    let server = support::RedisServer::start();
    for uri in ["memory://".to_owned(), server.uri()] {
        let store = AnyStore::open(&uri).await.expect("open");
        let p = Limiter::new(store).policy(
            "p",
            Policy::sliding_window_log(Rate::per_minute(2).into()).expect("in bounds"),
        );
        assert!(p.hit("k").await.expect("hit").allowed());
        assert_eq!(p.peek("k").await.expect("peek").remaining(), 1, "{uri}");
        assert!(p.hit("k").await.expect("hit").allowed());
        assert!(!p.hit("k").await.expect("hit").allowed(), "{uri}");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn concurrent_hits_share_one_multiplexed_connection() {
    let server = support::RedisServer::start();
    // 12,800 hits from 64 tasks: on a loaded machine some wait past the default 50 ms, and
    // what is tested here is the number of connections, not their latency.
    let store = RedisStore::connect(&server.uri())
        .await
        .expect("connect")
        .with_timeout(Duration::from_secs(5));
    let p = Limiter::new(store).policy(
        "p",
        Policy::token_bucket(Rate::per_second(1_000_000).into()).expect("bucket"),
    );
    let tasks: Vec<_> = (0..64u32)
        .map(|task| {
            let p = p.clone();
            tokio::spawn(async move {
                for i in 0..200u32 {
                    p.hit(&(task * 1000 + i)).await.expect("hit");
                }
            })
        })
        .collect();
    tokio::time::sleep(Duration::from_millis(20)).await;
    // Our connection, and redis-cli's own while it asks.
    let clients = server.cli(&["CLIENT", "LIST"]);
    for task in tasks {
        task.await.expect("task");
    }
    assert_eq!(clients.lines().count(), 2, "{clients}");
}

/// A ban set through one client is honoured through another (they share the key), lives in
/// Redis as long as it runs (the key's TTL), ends by itself, and a reset lifts it.
#[tokio::test]
async fn a_ban_is_one_ban_for_every_client_and_ends_by_itself() {
    let server = support::RedisServer::start();
    let ban = Ban::new(Rate::per_minute(2), Duration::from_secs(2)).expect("ban");
    let policy = Policy::fixed_window(Rate::per_minute(1).into()).with_ban(ban);
    let connect = || async {
        let store = RedisStore::connect(&server.uri()).await.expect("connect");
        Limiter::new(store).policy("login", policy.clone())
    };
    let (one, other) = (connect().await, connect().await);
    assert!(one.hit("alice").await.expect("hit").allowed());
    assert!(!other.hit("alice").await.expect("hit").banned()); // a breach, through the other
    let banned = one.hit("alice").await.expect("hit");
    assert!(banned.ban_started());
    let seen = other.hit("alice").await.expect("hit");
    assert!(seen.banned() && !seen.ban_started());
    assert!(seen.retry_after().expect("denied") > Duration::from_millis(1_500));
    tokio::time::sleep(Duration::from_millis(2_050)).await;
    let after = other.hit("alice").await.expect("hit");
    assert!(!after.banned(), "{after:?}"); // the ban ended; the minute's window still denies
    // A ban again, lifted by a reset through the other client.
    one.hit("bob").await.expect("hit");
    one.hit("bob").await.expect("breach");
    assert!(one.hit("bob").await.expect("breach").ban_started());
    other.reset("bob").await.expect("reset");
    assert!(one.hit("bob").await.expect("hit").allowed());
}

/// A ban outlives the counts: the key's TTL is the ban's, not the window's.
#[tokio::test]
async fn a_banned_key_lives_as_long_as_its_ban() {
    let server = support::RedisServer::start();
    let store = RedisStore::connect(&server.uri()).await.expect("connect");
    let ban = Ban::new(Rate::per_minute(1), Duration::from_secs(3600)).expect("ban");
    let policy = Policy::fixed_window(Rate::per_second(1).into()).with_ban(ban);
    let redis_key = store.prepare("login", &policy).redis_key(b"alice");
    let login = Limiter::new(store).policy("login", policy);
    login.hit("alice").await.expect("hit");
    assert!(login.hit("alice").await.expect("breach").ban_started());
    let key = String::from_utf8(redis_key).expect("ascii");
    let ttl: i64 = server.cli(&["PTTL", &key]).trim().parse().expect("pttl");
    assert!((3_590_000..=3_600_000).contains(&ttl), "ttl {ttl} ms");
}

/// Late charges from several clients add up in one count, into debt.
#[tokio::test]
async fn late_charges_from_every_client_are_counted() {
    let server = support::RedisServer::start();
    let policy = Policy::fixed_window(Rate::per_minute(100).into());
    let mut clients = Vec::new();
    for _ in 0..3 {
        let store = RedisStore::connect(&server.uri()).await.expect("connect");
        clients.push(Limiter::new(store).policy("tokens", policy.clone()));
    }
    for client in &clients {
        let after = client.overdraw("alice", 40).await.expect("late charge");
        assert_eq!(after.allowed(), !std::ptr::eq(client, &clients[2]));
    }
    // 120 of 100: 20 owed, carried into the next window.
    let peek = clients[0].peek("alice").await.expect("peek");
    assert_eq!((peek.allowed(), peek.remaining()), (false, 0));
    assert!(peek.retry_after().expect("denied") > Duration::from_secs(59));
}
