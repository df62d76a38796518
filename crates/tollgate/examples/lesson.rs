//! The lesson, run against the engine: a fixed window of 3 per minute, a token bucket of
//! capacity 2 refilled once a second, and a limit keyed per user.
//!
//! `cargo run --release -p tollgate --example lesson`

use std::error::Error;
use std::time::Duration;

use tollgate::{Decision, Limiter, MemoryStore, Policy};

fn show(who: &str, n: usize, d: &Decision) {
    match d.retry_after() {
        None => println!("  {who} request {n}: 200 pong ({} left)", d.remaining()),
        Some(_) => println!(
            "  {who} request {n}: 429 Too Many Requests, Retry-After: {} s",
            d.retry_after_secs().unwrap_or(1)
        ),
    }
}

fn main() -> Result<(), Box<dyn Error>> {
    let limiter = Limiter::new(MemoryStore::new());
    let fixed = limiter.policy("fixed", Policy::fixed_window("3/minute".parse()?));
    let bucket = limiter.policy(
        "bucket",
        Policy::token_bucket("1/second".parse()?)?.with_burst(2)?,
    );
    let per_user = limiter.policy("per-user", Policy::fixed_window("3 per minute".parse()?));

    futures_executor::block_on(async {
        println!("fixed window, 3 per minute per IP:");
        for n in 1..=5 {
            show("127.0.0.1", n, &fixed.hit("127.0.0.1").await?);
        }

        println!("token bucket, capacity 2, 1 token per second:");
        for n in 1..=4 {
            show("127.0.0.1", n, &bucket.hit("127.0.0.1").await?);
        }
        std::thread::sleep(Duration::from_millis(1050));
        println!("  ... 1.05 s later");
        show("127.0.0.1", 5, &bucket.hit("127.0.0.1").await?);

        println!("3 per minute per user:");
        for n in 1..=4 {
            show("alice", n, &per_user.hit("user:alice").await?);
        }
        show("bob", 1, &per_user.hit("user:bob").await?);
        Ok(())
    })
}
