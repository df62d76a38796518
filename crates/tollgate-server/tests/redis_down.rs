//! `tollgate serve` starts while Redis is down when the failure mode covers for it (allow,
//! fallback), answers checks by that mode, and counts in Redis once Redis appears.

#[path = "../../tollgate-redis/tests/support/mod.rs"]
mod redis_support;
mod support;

use std::time::{Duration, Instant};

use redis_support::RedisServer;
use support::{Tollgate, post, write_config};

fn starts_without_redis(mode: &str) {
    let mut redis = RedisServer::start();
    redis.kill(); // its port, with nothing listening yet
    let config = format!(
        "[server]\nlisten = \"127.0.0.1:0\"\non_storage_error = \"{mode}\"\n\n\
         [policies.api]\nlimits = \"100/hour\"\n"
    );
    let path = write_config("tollgate.toml", &config);
    let args = [
        "--config",
        path.to_str().expect("utf-8"),
        "--storage",
        &redis.uri(),
    ];
    let server = Tollgate::serve(&args, &[]);
    let check = r#"{"policy": "api", "key": "tenant-1"}"#;
    let reply = post(server.api(), "/v1/check", check);
    assert_eq!(
        reply.status, 200,
        "{mode}: answered while redis is down: {reply:?}"
    );

    redis.restart();
    let back = Instant::now();
    loop {
        let reply = post(server.api(), "/v1/check", check);
        assert_eq!(reply.status, 200, "{mode}: {reply:?}");
        let keys = redis.cli(&["--scan", "--pattern", "tollgate:api:*"]);
        if keys.lines().count() == 1 {
            break;
        }
        assert!(
            back.elapsed() < Duration::from_secs(5),
            "{mode}: counts never reached redis"
        );
        std::thread::sleep(Duration::from_millis(100));
    }
}

#[test]
fn serve_fails_open_until_redis_appears() {
    starts_without_redis("allow");
}

#[test]
fn serve_falls_back_until_redis_appears() {
    starts_without_redis("fallback");
}
