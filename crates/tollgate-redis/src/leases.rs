//! [`PreparedRedisLeases`]: a concurrency limit prepared for a [`RedisStore`](crate::RedisStore):
//! its keys' prefix and the calls of its two scripts (`lua/acquire.lua`, `lua/release.lua`).

use std::sync::LazyLock;
use std::time::Duration;

use redis::{Script, ScriptInvocation};
use tollgate::{Acquisition, ConcurrencyLimit, LeaseId, StoreError, Timestamp};

use crate::key::{client_key_len, push_client_key};

static ACQUIRE: LazyLock<Script> = LazyLock::new(|| Script::new(include_str!("lua/acquire.lua")));
static RELEASE: LazyLock<Script> = LazyLock::new(|| Script::new(include_str!("lua/release.lua")));

/// A concurrency limit prepared for a [`RedisStore`](crate::RedisStore): each key's live
/// leases are one sorted set (lease id to expiry, in microseconds of the Redis server's
/// `TIME`) under `{prefix}{name}:inflight:{key}`, expiring with its latest lease.
///
/// ```no_run
/// use tollgate::{ConcurrencyLimit, Store};
/// use tollgate_redis::RedisStore;
///
/// # #[tokio::main(flavor = "current_thread")]
/// # async fn main() -> Result<(), Box<dyn std::error::Error>> {
/// let store = RedisStore::connect("redis://127.0.0.1:6379").await?;
/// let uploads = store.prepare_leases("uploads", &ConcurrencyLimit::new(5)?);
/// assert_eq!(uploads.redis_key(b"alice"), b"tollgate:uploads:inflight:alice");
/// # Ok(())
/// # }
/// ```
#[derive(Debug, Clone)]
pub struct PreparedRedisLeases {
    key_prefix: Vec<u8>,
    max: u32,
    ttl_us: u64,
}

impl PreparedRedisLeases {
    /// `limit` prepared under `name`, its keys starting with `prefix`.
    pub(crate) fn new(prefix: &[u8], name: &str, limit: &ConcurrencyLimit) -> Self {
        let mut key_prefix = prefix.to_vec();
        key_prefix.extend_from_slice(name.as_bytes());
        key_prefix.extend_from_slice(b":inflight:");
        Self {
            key_prefix,
            max: limit.max(),
            ttl_us: u64::try_from(limit.lease_ttl().as_micros()).unwrap_or(u64::MAX),
        }
    }

    /// The Redis key holding `key`'s leases (a long key digested, as for policies).
    pub fn redis_key(&self, key: &[u8]) -> Vec<u8> {
        let mut full = Vec::with_capacity(self.key_prefix.len() + client_key_len(key));
        full.extend_from_slice(&self.key_prefix);
        push_client_key(&mut full, key);
        full
    }

    /// The call of the acquire script; `now` in client-time mode, else the server's `TIME`.
    pub(crate) fn acquire(
        &self,
        key: &[u8],
        lease: LeaseId,
        now: Option<Timestamp>,
    ) -> ScriptInvocation<'static> {
        let mut invocation = ACQUIRE.key(self.redis_key(key));
        invocation
            .arg(time_arg(now))
            .arg(lease.to_string())
            .arg(self.max)
            .arg(self.ttl_us);
        invocation
    }

    /// The call of the release script.
    pub(crate) fn release(
        &self,
        key: &[u8],
        lease: LeaseId,
        now: Option<Timestamp>,
    ) -> ScriptInvocation<'static> {
        let mut invocation = RELEASE.key(self.redis_key(key));
        invocation.arg(time_arg(now)).arg(lease.to_string());
        invocation
    }
}

fn time_arg(now: Option<Timestamp>) -> String {
    now.map_or_else(String::new, |now| (now.as_nanos() / 1_000).to_string())
}

/// Reads the acquire script's reply.
pub(crate) fn acquisition(reply: &[i64]) -> Result<Acquisition, StoreError> {
    let count = |n: i64| u32::try_from(n).ok();
    let read = match *reply {
        [1, in_flight, _] => count(in_flight).map(|in_flight| Acquisition::Acquired { in_flight }),
        [0, in_flight, retry_us] => {
            count(in_flight)
                .zip(u64::try_from(retry_us).ok())
                .map(|(in_flight, retry_us)| Acquisition::Full {
                    in_flight,
                    retry_after: Duration::from_micros(retry_us),
                })
        }
        _ => None,
    };
    read.ok_or_else(|| StoreError::unavailable(format!("unexpected acquire reply {reply:?}")))
}
