//! [`AnyStore`]: a store chosen by a URI, the form the whole project configures storage in.

use std::fmt;
use std::future::Future;

use tollgate::{
    Acquisition, ConcurrencyLimit, DEFAULT_MAX_KEYS, Decision, GiveBack, Grant, LeaseId,
    MemoryStore, Policy, PreparedMemory, PreparedMemoryLeases, Store, StoreError, Timestamp,
};

use crate::late::LateHitStats;
use crate::leases::PreparedRedisLeases;
use crate::prepared::PreparedRedis;
use crate::store::RedisStore;

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

/// A storage URI that could not be opened: what is wrong with it, or why connecting failed.
/// The URI in the message never shows a password.
///
/// ```
/// use tollgate_redis::{StorageUri, UriError};
///
/// let err: UriError = "redis://:s3cret@".parse::<StorageUri>().unwrap_err();
/// assert!(err.to_string().starts_with("invalid storage URI \"redis://***@\": "));
/// assert!(!err.is_unreachable());
/// ```
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
    ///
    /// ```
    /// use tollgate_redis::AnyStore;
    ///
    /// # #[tokio::main(flavor = "current_thread")]
    /// # async fn main() -> Result<(), Box<dyn std::error::Error>> {
    /// let down = AnyStore::open("redis://127.0.0.1:1").await.unwrap_err(); // no server there
    /// assert!(down.is_unreachable());
    /// assert!(down.to_string().starts_with("cannot open storage \"redis://127.0.0.1:1\": "));
    /// let malformed = AnyStore::open("redis+cluster://").await.unwrap_err();
    /// assert!(!malformed.is_unreachable());
    /// # Ok(())
    /// # }
    /// ```
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

/// A storage URI, checked: what [`AnyStore::open`] will open, without connecting yet.
///
/// ```
/// use tollgate_redis::StorageUri;
///
/// let uri: StorageUri = "redis://:secret@127.0.0.1:6379/0".parse()?;
/// assert_eq!(uri.to_string(), "redis://***@127.0.0.1:6379/0");
/// assert!("redis+cluster://".parse::<StorageUri>().is_err());
/// # Ok::<(), tollgate_redis::UriError>(())
/// ```
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StorageUri {
    /// As written (it may hold a password).
    uri: String,
    kind: StorageKind,
    /// The budget of keys of a memory store opened from it.
    max_keys: usize,
}

#[derive(Debug, Clone, PartialEq, Eq)]
enum StorageKind {
    Memory,
    Redis,
    /// The node URIs, each `redis://host:port` or `rediss://host:port`.
    Cluster(Vec<String>),
}

impl std::str::FromStr for StorageUri {
    type Err = UriError;

    fn from_str(uri: &str) -> Result<Self, UriError> {
        let error = |reason: String| UriError {
            uri: crate::redacted(uri),
            reason,
            unreachable: false,
        };
        let Some((scheme, rest)) = uri.split_once("://") else {
            return Err(error(
                "expected a scheme such as memory:// or redis://host:port".to_owned(),
            ));
        };
        let kind = match scheme {
            "memory" if rest.is_empty() => StorageKind::Memory,
            "memory" => {
                return Err(error(format!(
                    "memory:// takes nothing after the scheme, found {rest:?}"
                )));
            }
            "redis" | "rediss" => {
                redis::Client::open(uri).map_err(|e| error(e.to_string()))?;
                StorageKind::Redis
            }
            "redis+cluster" | "rediss+cluster" => {
                if rest.trim().trim_end_matches('/').is_empty() {
                    return Err(error(
                        "expected at least one host:port after the scheme".to_owned(),
                    ));
                }
                let node_scheme = scheme.trim_end_matches("+cluster");
                let nodes: Vec<String> = rest
                    .trim_end_matches('/')
                    .split(',')
                    .map(|node| format!("{node_scheme}://{}", node.trim()))
                    .collect();
                for node in &nodes {
                    redis::Client::open(node.as_str())
                        .map_err(|e| error(format!("node {:?}: {e}", crate::redacted(node))))?;
                }
                StorageKind::Cluster(nodes)
            }
            other => {
                return Err(error(format!(
                    "unknown scheme {other:?}; expected memory://, redis://, rediss://, \
                     redis+cluster:// or rediss+cluster://"
                )));
            }
        };
        Ok(Self {
            uri: uri.to_owned(),
            kind,
            max_keys: DEFAULT_MAX_KEYS,
        })
    }
}

impl fmt::Display for StorageUri {
    /// The URI with any password replaced by `***`.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&crate::redacted(&self.uri))
    }
}

impl StorageUri {
    /// `memory://`.
    ///
    /// ```
    /// use tollgate_redis::StorageUri;
    ///
    /// assert_eq!(StorageUri::memory(), "memory://".parse::<StorageUri>()?);
    /// assert_eq!(StorageUri::memory().to_string(), "memory://");
    /// # Ok::<(), tollgate_redis::UriError>(())
    /// ```
    pub fn memory() -> Self {
        Self {
            uri: "memory://".to_owned(),
            kind: StorageKind::Memory,
            max_keys: DEFAULT_MAX_KEYS,
        }
    }

    /// Sets the budget of keys of the memory store `memory://` opens
    /// ([`MemoryStore::with_max_keys`]; [`DEFAULT_MAX_KEYS`] unless set), over all its
    /// policies together. A Redis URI keeps it for whoever opens a memory store beside Redis
    /// (a failure mode's fallback); Redis itself has no such budget.
    ///
    /// ```
    /// use tollgate_redis::{AnyStore, StorageUri};
    ///
    /// # #[tokio::main(flavor = "current_thread")]
    /// # async fn main() -> Result<(), Box<dyn std::error::Error>> {
    /// let uri = StorageUri::memory().with_max_keys(1_000);
    /// assert_eq!(uri.max_keys(), 1_000);
    /// assert_eq!(uri.to_string(), "memory://"); // not part of the URI
    /// let AnyStore::Memory(store) = uri.open().await? else { unreachable!() };
    /// assert!(format!("{store:?}").contains("max_keys: 1000"));
    /// # Ok(())
    /// # }
    /// ```
    pub fn with_max_keys(mut self, max_keys: usize) -> Self {
        self.max_keys = max_keys;
        self
    }

    /// The budget of keys of a memory store opened from this URI: see
    /// [`StorageUri::with_max_keys`].
    pub fn max_keys(&self) -> usize {
        self.max_keys
    }

    /// Whether this is `memory://`.
    ///
    /// ```
    /// use tollgate_redis::StorageUri;
    ///
    /// assert!(StorageUri::memory().is_memory());
    /// assert!(!"redis://127.0.0.1:6379".parse::<StorageUri>()?.is_memory());
    /// # Ok::<(), tollgate_redis::UriError>(())
    /// ```
    pub fn is_memory(&self) -> bool {
        self.kind == StorageKind::Memory
    }

    /// Opens the store, connecting to Redis if the URI names Redis.
    ///
    /// ```
    /// use tollgate_redis::{AnyStore, StorageUri};
    ///
    /// # #[tokio::main(flavor = "current_thread")]
    /// # async fn main() -> Result<(), Box<dyn std::error::Error>> {
    /// let uri: StorageUri = "memory://".parse()?; // checked once, opened later
    /// assert!(matches!(uri.open().await?, AnyStore::Memory(_)));
    /// let down: StorageUri = "redis://127.0.0.1:1".parse()?; // well formed...
    /// assert!(down.open().await.unwrap_err().is_unreachable()); // ...but nothing listens there
    /// # Ok(())
    /// # }
    /// ```
    pub async fn open(&self) -> Result<AnyStore, UriError> {
        let unreachable = |err: StoreError| UriError {
            uri: crate::redacted(&self.uri),
            reason: err.to_string(),
            unreachable: true,
        };
        Ok(match &self.kind {
            StorageKind::Memory => AnyStore::Memory(MemoryStore::with_max_keys(self.max_keys)),
            StorageKind::Redis => {
                AnyStore::Redis(RedisStore::connect(&self.uri).await.map_err(unreachable)?)
            }
            StorageKind::Cluster(nodes) => AnyStore::Redis(
                RedisStore::connect_cluster(nodes)
                    .await
                    .map_err(unreachable)?,
            ),
        })
    }
}

impl StorageUri {
    /// Opens the store like [`StorageUri::open`], but when the URI names one Redis server that
    /// cannot be reached yet, opens it anyway, connecting on first use (see
    /// [`RedisStore::connect_lazily`]): for a server whose failure mode covers for a Redis
    /// that is down. Returns the store and, when Redis was not reachable, why. A Redis Cluster
    /// must still be reachable to be opened.
    ///
    /// ```
    /// use tollgate_redis::{AnyStore, StorageUri};
    ///
    /// # #[tokio::main(flavor = "current_thread")]
    /// # async fn main() -> Result<(), Box<dyn std::error::Error>> {
    /// let down: StorageUri = "redis://127.0.0.1:1".parse()?; // nothing listens there
    /// let (store, unreachable) = down.open_or_connect_later().await?;
    /// assert!(matches!(store, AnyStore::Redis(_)));
    /// assert!(unreachable.expect("redis is down").is_unreachable());
    /// let (_, unreachable) = StorageUri::memory().open_or_connect_later().await?;
    /// assert!(unreachable.is_none());
    /// # Ok(())
    /// # }
    /// ```
    pub async fn open_or_connect_later(&self) -> Result<(AnyStore, Option<UriError>), UriError> {
        match self.open().await {
            Ok(store) => Ok((store, None)),
            Err(err) if err.is_unreachable() && self.kind == StorageKind::Redis => {
                let store = RedisStore::connect_lazily(&self.uri).map_err(|e| UriError {
                    uri: crate::redacted(&self.uri),
                    reason: e.to_string(),
                    unreachable: false,
                })?;
                Ok((AnyStore::Redis(store), Some(err)))
            }
            Err(err) => Err(err),
        }
    }
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
