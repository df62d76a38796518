//! [`StorageUri`]: the URI the whole project configures storage in, and [`UriError`].

use std::fmt;

use tollgate::{DEFAULT_MAX_KEYS, MemoryStore, StoreError};

use crate::any_store::AnyStore;
use crate::store::RedisStore;

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
