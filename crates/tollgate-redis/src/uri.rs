//! [`AnyStore`]: a store chosen by a URI, the form the whole project configures storage in.

use std::fmt;
use std::future::Future;

use tollgate::{Decision, MemoryPolicy, MemoryStore, Policy, Store, StoreError, Timestamp};

use crate::{RedisPolicy, RedisStore};

/// A store chosen at run time from a URI:
///
/// | URI | store |
/// | --- | --- |
/// | `memory://` | a [`MemoryStore`] in this process |
/// | `redis://[user:password@]host[:port][/db]` | one Redis server |
/// | `rediss://...` | one Redis server over TLS |
/// | `redis+cluster://host1:port1,host2:port2` | a Redis Cluster, through any of these nodes |
/// | `rediss+cluster://...` | a Redis Cluster over TLS |
///
/// ```
/// use tollgate_redis::AnyStore;
///
/// # tokio::runtime::Runtime::new().unwrap().block_on(async {
/// let store = AnyStore::open("memory://").await?;
/// assert!(matches!(store, AnyStore::Memory(_)));
///
/// let err = AnyStore::open("mongodb://localhost").await.unwrap_err();
/// assert_eq!(
///     err.to_string(),
///     "invalid storage URI \"mongodb://localhost\": unknown scheme \"mongodb\"; \
///      expected memory://, redis://, rediss://, redis+cluster:// or rediss+cluster://"
/// );
/// # Ok::<(), tollgate_redis::UriError>(())
/// # }).unwrap();
/// ```
#[derive(Debug, Clone)]
pub enum AnyStore {
    /// `memory://`
    Memory(MemoryStore),
    /// `redis://`, `rediss://`, `redis+cluster://`, `rediss+cluster://`
    Redis(RedisStore),
}

/// A policy prepared for an [`AnyStore`].
#[derive(Debug, Clone)]
pub enum AnyPolicy {
    /// Prepared for [`AnyStore::Memory`].
    Memory(MemoryPolicy),
    /// Prepared for [`AnyStore::Redis`].
    Redis(RedisPolicy),
}

/// A storage URI that could not be opened: what is wrong with it, or why connecting failed.
/// The URI in the message never shows a password.
#[derive(Debug)]
pub struct UriError {
    /// The URI, redacted.
    uri: String,
    reason: String,
    /// Whether the URI was fine but its server could not be reached.
    unreachable: bool,
}

impl UriError {
    /// Whether the URI was well formed but its server could not be reached (as opposed to a
    /// malformed URI).
    pub fn is_unreachable(&self) -> bool {
        self.unreachable
    }
}

impl fmt::Display for UriError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if self.unreachable {
            write!(f, "cannot open storage {:?}: {}", self.uri, self.reason)
        } else {
            write!(f, "invalid storage URI {:?}: {}", self.uri, self.reason)
        }
    }
}

impl std::error::Error for UriError {}

impl AnyStore {
    /// Opens the store `uri` names, connecting to Redis if it names Redis.
    pub async fn open(uri: &str) -> Result<Self, UriError> {
        let error = |reason: String| UriError {
            uri: crate::redacted(uri),
            reason,
            unreachable: false,
        };
        let unreachable = |err: StoreError| UriError {
            uri: crate::redacted(uri),
            reason: err.to_string(),
            unreachable: true,
        };
        let Some((scheme, rest)) = uri.split_once("://") else {
            return Err(error(
                "expected a scheme such as memory:// or redis://host:port".to_owned(),
            ));
        };
        match scheme {
            "memory" if rest.is_empty() => Ok(AnyStore::Memory(MemoryStore::new())),
            "memory" => Err(error(format!(
                "memory:// takes nothing after the scheme, found {rest:?}"
            ))),
            "redis" | "rediss" => {
                // Parse first so that a malformed URI is told apart from an unreachable server.
                redis::Client::open(uri).map_err(|e| error(e.to_string()))?;
                let store = RedisStore::connect(uri).await.map_err(unreachable)?;
                Ok(AnyStore::Redis(store))
            }
            "redis+cluster" | "rediss+cluster" => {
                let node_scheme = scheme.trim_end_matches("+cluster");
                let nodes: Vec<String> = rest
                    .trim_end_matches('/')
                    .split(',')
                    .map(|node| format!("{node_scheme}://{}", node.trim()))
                    .collect();
                if rest.trim().is_empty() {
                    return Err(error(
                        "expected at least one host:port after the scheme".to_owned(),
                    ));
                }
                for node in &nodes {
                    redis::Client::open(node.as_str())
                        .map_err(|e| error(format!("node {:?}: {e}", crate::redacted(node))))?;
                }
                let store = RedisStore::connect_cluster(&nodes)
                    .await
                    .map_err(unreachable)?;
                Ok(AnyStore::Redis(store))
            }
            other => Err(error(format!(
                "unknown scheme {other:?}; expected memory://, redis://, rediss://, \
                 redis+cluster:// or rediss+cluster://"
            ))),
        }
    }
}

/// A call the memory store answered at once, or one waiting for Redis.
enum Started<T, F> {
    Answered(Result<T, StoreError>),
    Pending(F),
}

fn mismatch() -> StoreError {
    StoreError::unavailable("policy was prepared for another kind of store")
}

impl Store for AnyStore {
    type Prepared = AnyPolicy;

    fn answers_immediately(&self) -> bool {
        matches!(self, AnyStore::Memory(_))
    }

    fn prepare(&self, name: &str, policy: &Policy) -> AnyPolicy {
        match self {
            AnyStore::Memory(store) => AnyPolicy::Memory(store.prepare(name, policy)),
            AnyStore::Redis(store) => AnyPolicy::Redis(store.prepare(name, policy)),
        }
    }

    fn hit<'a>(
        &'a self,
        policy: &'a AnyPolicy,
        key: &[u8],
        now: Timestamp,
        cost: u64,
    ) -> impl Future<Output = Result<Decision, StoreError>> + Send + use<'a> {
        let started = match (self, policy) {
            (AnyStore::Memory(store), AnyPolicy::Memory(p)) => {
                Started::Answered(Ok(store.hit_now(p, key, now, cost)))
            }
            (AnyStore::Redis(store), AnyPolicy::Redis(p)) => {
                Started::Pending(store.hit(p, key, now, cost))
            }
            _ => Started::Answered(Err(mismatch())),
        };
        async move {
            match started {
                Started::Answered(answer) => answer,
                Started::Pending(pending) => pending.await,
            }
        }
    }

    fn refund<'a>(
        &'a self,
        policy: &'a AnyPolicy,
        key: &[u8],
        now: Timestamp,
        cost: u64,
    ) -> impl Future<Output = Result<(), StoreError>> + Send + use<'a> {
        let started = match (self, policy) {
            (AnyStore::Memory(store), AnyPolicy::Memory(p)) => {
                store.refund_now(p, key, now, cost);
                Started::Answered(Ok(()))
            }
            (AnyStore::Redis(store), AnyPolicy::Redis(p)) => {
                Started::Pending(store.refund(p, key, now, cost))
            }
            _ => Started::Answered(Err(mismatch())),
        };
        async move {
            match started {
                Started::Answered(answer) => answer,
                Started::Pending(pending) => pending.await,
            }
        }
    }

    async fn reset(&self, policy: &AnyPolicy, key: &[u8]) -> Result<(), StoreError> {
        match (self, policy) {
            (AnyStore::Memory(store), AnyPolicy::Memory(p)) => store.reset(p, key).await,
            (AnyStore::Redis(store), AnyPolicy::Redis(p)) => store.reset(p, key).await,
            _ => Err(mismatch()),
        }
    }
}
