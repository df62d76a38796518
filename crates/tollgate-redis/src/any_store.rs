//! [`AnyStore`]: a store chosen at run time from a [`StorageUri`](crate::StorageUri), the
//! form the whole project configures storage in, and its [`Store`] implementation.

use std::future::Future;

use tollgate::{
    Acquisition, ConcurrencyLimit, Decision, GiveBack, Grant, LeaseId, MemoryStore, Policy,
    PreparedMemory, PreparedMemoryLeases, Store, StoreError, Timestamp,
};

use crate::late::LateHitStats;
use crate::leases::PreparedRedisLeases;
use crate::prepared::PreparedRedis;
use crate::store::RedisStore;
use crate::uri::{StorageUri, UriError};

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
///
/// ```
/// use tollgate::{Policy, Store, Timestamp};
/// use tollgate_redis::{AnyStore, PreparedAny};
///
/// # #[tokio::main(flavor = "current_thread")]
/// # async fn main() -> Result<(), Box<dyn std::error::Error>> {
/// let store = AnyStore::open("memory://").await?;
/// let login = store.prepare("login", &Policy::fixed_window("1/minute".parse()?));
/// assert!(matches!(login, PreparedAny::Memory(_))); // prepared for the store it names
/// assert!(store.hit(&login, b"alice", Timestamp::from_nanos(0), 1).await?.allowed());
/// assert!(!store.hit(&login, b"alice", Timestamp::from_nanos(0), 1).await?.allowed());
/// # Ok(())
/// # }
/// ```
#[derive(Debug, Clone)]
pub enum PreparedAny {
    /// Prepared for [`AnyStore::Memory`].
    Memory(PreparedMemory),
    /// Prepared for [`AnyStore::Redis`].
    Redis(PreparedRedis),
}

/// A concurrency limit prepared for an [`AnyStore`]: for the kind of store it names.
///
/// ```
/// use tollgate::{ConcurrencyLimit, Store};
/// use tollgate_redis::{AnyStore, PreparedAnyLeases};
///
/// # #[tokio::main(flavor = "current_thread")]
/// # async fn main() -> Result<(), Box<dyn std::error::Error>> {
/// let store = AnyStore::open("memory://").await?;
/// let uploads = store.prepare_leases("uploads", &ConcurrencyLimit::new(5)?);
/// assert!(matches!(uploads, PreparedAnyLeases::Memory(_)));
/// # Ok(())
/// # }
/// ```
#[derive(Debug, Clone)]
pub enum PreparedAnyLeases {
    /// Prepared for [`AnyStore::Memory`].
    Memory(PreparedMemoryLeases),
    /// Prepared for [`AnyStore::Redis`].
    Redis(PreparedRedisLeases),
}

impl AnyStore {
    /// Opens the store `uri` names, connecting to Redis if it names Redis: see
    /// [`StorageUri`].
    pub async fn open(uri: &str) -> Result<Self, UriError> {
        uri.parse::<StorageUri>()?.open().await
    }

    /// What is known of the Redis store's hits that timed out ([`RedisStore::late_hits`]);
    /// nothing for memory, which never times out.
    ///
    /// ```
    /// use tollgate_redis::AnyStore;
    ///
    /// # #[tokio::main(flavor = "current_thread")]
    /// # async fn main() -> Result<(), Box<dyn std::error::Error>> {
    /// let store = AnyStore::open("memory://").await?;
    /// assert_eq!(store.late_hits().timed_out, 0);
    /// # Ok(())
    /// # }
    /// ```
    pub fn late_hits(&self) -> LateHitStats {
        match self {
            AnyStore::Memory(_) => LateHitStats::default(),
            AnyStore::Redis(store) => store.late_hits(),
        }
    }
}

/// A call handed to the store it was prepared for.
enum Started<M, R> {
    Memory(M),
    Redis(R),
    Mismatch,
}

fn mismatch() -> StoreError {
    StoreError::unavailable("policy was prepared for another kind of store")
}

impl Store for AnyStore {
    type Prepared = PreparedAny;
    type PreparedLeases = PreparedAnyLeases;

    fn prepare_leases(&self, name: &str, limit: &ConcurrencyLimit) -> PreparedAnyLeases {
        match self {
            AnyStore::Memory(store) => PreparedAnyLeases::Memory(store.prepare_leases(name, limit)),
            AnyStore::Redis(store) => PreparedAnyLeases::Redis(store.prepare_leases(name, limit)),
        }
    }

    fn acquire<'a>(
        &'a self,
        leases: &'a PreparedAnyLeases,
        key: &[u8],
        lease: LeaseId,
        now: Timestamp,
    ) -> impl Future<Output = Result<Acquisition, StoreError>> + Send + use<'a> {
        let started = match (self, leases) {
            (AnyStore::Memory(store), PreparedAnyLeases::Memory(p)) => {
                Started::Memory(store.acquire(p, key, lease, now))
            }
            (AnyStore::Redis(store), PreparedAnyLeases::Redis(p)) => {
                Started::Redis(store.acquire(p, key, lease, now))
            }
            _ => Started::Mismatch,
        };
        async move {
            match started {
                Started::Memory(memory) => memory.await,
                Started::Redis(redis) => redis.await,
                Started::Mismatch => Err(mismatch()),
            }
        }
    }

    fn release<'a>(
        &'a self,
        leases: &'a PreparedAnyLeases,
        key: &[u8],
        lease: LeaseId,
        now: Timestamp,
    ) -> impl Future<Output = Result<bool, StoreError>> + Send + use<'a> {
        let started = match (self, leases) {
            (AnyStore::Memory(store), PreparedAnyLeases::Memory(p)) => {
                Started::Memory(store.release(p, key, lease, now))
            }
            (AnyStore::Redis(store), PreparedAnyLeases::Redis(p)) => {
                Started::Redis(store.release(p, key, lease, now))
            }
            _ => Started::Mismatch,
        };
        async move {
            match started {
                Started::Memory(memory) => memory.await,
                Started::Redis(redis) => redis.await,
                Started::Mismatch => Err(mismatch()),
            }
        }
    }

    fn answers_immediately(&self) -> bool {
        matches!(self, AnyStore::Memory(_))
    }

    fn failure_domains(&self) -> usize {
        match self {
            AnyStore::Memory(store) => store.failure_domains(),
            AnyStore::Redis(store) => store.failure_domains(),
        }
    }

    fn failure_domain(&self, policy: &PreparedAny, key: &[u8]) -> usize {
        match (self, policy) {
            (AnyStore::Redis(store), PreparedAny::Redis(p)) => store.failure_domain(p, key),
            _ => 0,
        }
    }

    fn prepare(&self, name: &str, policy: &Policy) -> PreparedAny {
        match self {
            AnyStore::Memory(store) => PreparedAny::Memory(store.prepare(name, policy)),
            AnyStore::Redis(store) => PreparedAny::Redis(store.prepare(name, policy)),
        }
    }

    fn hit<'a>(
        &'a self,
        policy: &'a PreparedAny,
        key: &[u8],
        now: Timestamp,
        cost: u64,
    ) -> impl Future<Output = Result<Decision, StoreError>> + Send + use<'a> {
        let started = match (self, policy) {
            (AnyStore::Memory(store), PreparedAny::Memory(p)) => {
                Started::Memory(store.hit(p, key, now, cost))
            }
            (AnyStore::Redis(store), PreparedAny::Redis(p)) => {
                Started::Redis(store.hit(p, key, now, cost))
            }
            _ => Started::Mismatch,
        };
        async move {
            match started {
                Started::Memory(memory) => memory.await,
                Started::Redis(redis) => redis.await,
                Started::Mismatch => Err(mismatch()),
            }
        }
    }

    fn take<'a>(
        &'a self,
        policy: &'a PreparedAny,
        key: &[u8],
        now: Timestamp,
        need: u64,
        want: u64,
        give_back: GiveBack,
    ) -> impl Future<Output = Result<Grant, StoreError>> + Send + use<'a> {
        let started = match (self, policy) {
            (AnyStore::Memory(store), PreparedAny::Memory(p)) => {
                Started::Memory(store.take(p, key, now, need, want, give_back))
            }
            (AnyStore::Redis(store), PreparedAny::Redis(p)) => {
                Started::Redis(store.take(p, key, now, need, want, give_back))
            }
            _ => Started::Mismatch,
        };
        async move {
            match started {
                Started::Memory(memory) => memory.await,
                Started::Redis(redis) => redis.await,
                Started::Mismatch => Err(mismatch()),
            }
        }
    }

    fn refund<'a>(
        &'a self,
        policy: &'a PreparedAny,
        key: &[u8],
        now: Timestamp,
        cost: u64,
    ) -> impl Future<Output = Result<(), StoreError>> + Send + use<'a> {
        let started = match (self, policy) {
            (AnyStore::Memory(store), PreparedAny::Memory(p)) => {
                Started::Memory(store.refund(p, key, now, cost))
            }
            (AnyStore::Redis(store), PreparedAny::Redis(p)) => {
                Started::Redis(store.refund(p, key, now, cost))
            }
            _ => Started::Mismatch,
        };
        async move {
            match started {
                Started::Memory(memory) => memory.await,
                Started::Redis(redis) => redis.await,
                Started::Mismatch => Err(mismatch()),
            }
        }
    }

    fn overdraw<'a>(
        &'a self,
        policy: &'a PreparedAny,
        key: &[u8],
        now: Timestamp,
        cost: u64,
    ) -> impl Future<Output = Result<Decision, StoreError>> + Send + use<'a> {
        let started = match (self, policy) {
            (AnyStore::Memory(store), PreparedAny::Memory(p)) => {
                Started::Memory(store.overdraw(p, key, now, cost))
            }
            (AnyStore::Redis(store), PreparedAny::Redis(p)) => {
                Started::Redis(store.overdraw(p, key, now, cost))
            }
            _ => Started::Mismatch,
        };
        async move {
            match started {
                Started::Memory(memory) => memory.await,
                Started::Redis(redis) => redis.await,
                Started::Mismatch => Err(mismatch()),
            }
        }
    }

    async fn reset(&self, policy: &PreparedAny, key: &[u8]) -> Result<(), StoreError> {
        match (self, policy) {
            (AnyStore::Memory(store), PreparedAny::Memory(p)) => store.reset(p, key).await,
            (AnyStore::Redis(store), PreparedAny::Redis(p)) => store.reset(p, key).await,
            _ => Err(mismatch()),
        }
    }
}
