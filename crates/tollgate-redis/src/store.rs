//! [`RedisStore`]: the states in Redis, each hit one atomic script call.

use std::fmt;
use std::future::Future;
use std::sync::Arc;
use std::time::Duration;

use redis::Client;
use redis::aio::ConnectionManager;
use redis::cluster::ClusterClient;
use tollgate::strategy::{TickDecision, TickRate};
use tollgate::{Decision, Policy, Store, StoreError, Timestamp};

use crate::connection::{Command, Connection, manager_config, timed_out, unavailable, within};
use crate::key::{client_key_len, push_client_key};
use crate::late::{LateHitStats, LateHits};
use crate::script::{self, Scripts};
use crate::tick::tick_us;

/// The default prefix of every key tollgate writes.
///
/// ```no_run
/// use tollgate::{Policy, Store};
/// use tollgate_redis::{DEFAULT_PREFIX, RedisStore};
///
/// # #[tokio::main(flavor = "current_thread")]
/// # async fn main() -> Result<(), Box<dyn std::error::Error>> {
/// assert_eq!(DEFAULT_PREFIX, "tollgate:");
/// let store = RedisStore::connect("redis://127.0.0.1:6379").await?;
/// let login = store.prepare("login", &Policy::fixed_window("5/minute".parse()?));
/// assert!(login.redis_key(b"alice").starts_with(DEFAULT_PREFIX.as_bytes()));
/// # Ok(())
/// # }
/// ```
pub const DEFAULT_PREFIX: &str = "tollgate:";

/// The default time a call may take before it fails with a timeout.
///
/// ```
/// use std::time::Duration;
///
/// assert_eq!(tollgate_redis::DEFAULT_TIMEOUT, Duration::from_millis(50));
/// ```
pub const DEFAULT_TIMEOUT: Duration = Duration::from_millis(50);

/// A [`Store`] in Redis or a Redis Cluster: every process that points at the same Redis
/// shares one count.
///
/// Each hit is one `EVALSHA` of the strategy's script (loaded again by itself after a
/// `NOSCRIPT`, as after a Redis restart), which reads the key's state, applies the hit to
/// every rate of the policy or to none, and writes the state back with a TTL, atomically.
/// A refund is one `EVALSHA` of the strategy's refund script, which gives the units back to
/// every rate the same way (and leaves a key with no state alone).
/// Connections are multiplexed: concurrent hits from many tasks are pipelined over one
/// connection per node, which reconnects by itself.
///
/// Time comes from the Redis server's `TIME`, so hosts with skewed clocks agree; in client-time
/// mode ([`RedisStore::with_client_time`]) the limiter's clock is used instead, for
/// deterministic tests.
///
/// Every call fails within the timeout ([`DEFAULT_TIMEOUT`] unless set) with a
/// [`StoreError`] that a [`tollgate::Failover`] can act on. Calls run on tokio: use the
/// store from within a tokio runtime.
///
/// A call whose connection is refused is tried once more within the same timeout (the
/// command was never sent, so it cannot be counted twice). A call that times out is not
/// retried, and may still be applied by Redis after the timeout: a timed-out hit is not
/// proof that nothing was counted. So the store keeps waiting for a timed-out hit's reply in
/// the background (up to 10 s, for at most 1024 hits at once), counts what it learns
/// ([`RedisStore::late_hits`]), and attaches a [`tollgate::PendingHit`] to the timeout
/// error: a [`tollgate::Failover`] whose answer refused the request gives a late charge back,
/// so that a request is not refused now and counted against its client later (see
/// [`tollgate::Failover`]'s "Hits that time out"). A hit whose reply never comes within that
/// wait, or past that many, stays as Redis left it.
///
/// ```no_run
/// use tollgate::{Limiter, Policy};
/// use tollgate_redis::RedisStore;
///
/// # async fn run() -> Result<(), Box<dyn std::error::Error>> {
/// let store = RedisStore::connect("redis://127.0.0.1:6379/0").await?;
/// let login = Limiter::new(store).policy("login", Policy::fixed_window("5/minute".parse()?));
/// let decision = login.hit("user:42").await?;
/// # Ok(())
/// # }
/// ```
#[derive(Clone)]
pub struct RedisStore {
    connection: Connection,
    prefix: Arc<[u8]>,
    timeout: Duration,
    client_time: bool,
    /// Hits that timed out, whose late outcome is watched.
    late: Arc<LateHits>,
}

impl fmt::Debug for RedisStore {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("RedisStore")
            .field(
                "connection",
                &match self.connection {
                    Connection::Single(_) => "single",
                    Connection::Cluster(_) => "cluster",
                },
            )
            .field("prefix", &String::from_utf8_lossy(&self.prefix))
            .field("timeout", &self.timeout)
            .field("client_time", &self.client_time)
            .finish()
    }
}

/// A policy prepared for a [`RedisStore`]: its scripts, key prefix, tick and arguments.
///
/// ```no_run
/// use std::time::Duration;
/// use tollgate::{Policy, Store};
/// use tollgate_redis::{PreparedRedis, RedisStore};
///
/// # #[tokio::main(flavor = "current_thread")]
/// # async fn main() -> Result<(), Box<dyn std::error::Error>> {
/// let store = RedisStore::connect("redis://127.0.0.1:6379").await?;
/// let login: PreparedRedis = store.prepare("login", &Policy::fixed_window("5/minute".parse()?));
/// assert_eq!(login.tick(), Duration::from_micros(1));
/// assert_eq!((login.limits()[0].amount(), login.limits()[0].window()), (5, 60_000_000));
/// assert!(login.redis_key(b"alice").starts_with(b"tollgate:login:"));
/// # Ok(())
/// # }
/// ```
#[derive(Debug, Clone)]
pub struct PreparedRedis {
    /// The strategy's scripts, to apply hits and to refund.
    scripts: &'static Scripts,
    /// `{prefix}{name}:{fingerprint}:`; the client's key follows, digested when long.
    key_prefix: Vec<u8>,
    /// The tick, in microseconds, that times and windows are counted in.
    tick_us: u64,
    limits: Box<[TickRate]>,
}

impl PreparedRedis {
    /// The length of the ticks the script counts time in: 1 µs, or a power of ten of them for
    /// policies whose numbers would not stay exact in Lua's doubles (see the crate's docs).
    ///
    /// ```
    /// use std::time::Duration;
    /// use tollgate::{Policy, Rate, Store};
    /// use tollgate_redis::RedisStore;
    ///
    /// # #[tokio::main(flavor = "current_thread")]
    /// # async fn main() -> Result<(), Box<dyn std::error::Error>> {
    /// let store = RedisStore::connect_lazily("redis://127.0.0.1:6379")?; // prepares offline
    /// let login = store.prepare("login", &Policy::fixed_window(Rate::per_minute(5).into()));
    /// assert_eq!(login.tick(), Duration::from_micros(1));
    /// // A counter weighs 10^9 a day by 86,400 s of µs, past 2^49: counted in ticks of 1 s.
    /// let busy = Policy::sliding_window_counter(Rate::per_day(1_000_000_000).into());
    /// assert_eq!(store.prepare("busy", &busy).tick(), Duration::from_secs(1));
    /// // A token bucket of 10^6 a second counts a token a microsecond, however written.
    /// let fast = Policy::token_bucket("86400000000/day".parse()?)?;
    /// assert_eq!(store.prepare("fast", &fast).tick(), Duration::from_micros(1));
    /// # Ok(())
    /// # }
    /// ```
    pub fn tick(&self) -> Duration {
        Duration::from_micros(self.tick_us)
    }

    /// The limits as the script applies them, in ticks of [`PreparedRedis::tick`]: what
    /// [`tollgate::strategy::apply`] must be given to make the same decisions.
    ///
    /// ```no_run
    /// use tollgate::strategy::{FixedWindow, apply};
    /// use tollgate::{Policy, Store, Timestamp};
    /// use tollgate_redis::RedisStore;
    ///
    /// # #[tokio::main(flavor = "current_thread")]
    /// # async fn main() -> Result<(), Box<dyn std::error::Error>> {
    /// let store = RedisStore::connect("redis://127.0.0.1:6379").await?.with_client_time();
    /// let policy = Policy::fixed_window("2/minute".parse()?);
    /// let prepared = store.prepare("twin", &policy);
    /// # store.reset(&prepared, b"k").await?;
    /// // The script and the pure function make the same decisions.
    /// let mut state = [FixedWindow::default()];
    /// for _ in 0..3 {
    ///     let local = apply(&mut state, prepared.limits(), 0, 1);
    ///     let redis = store.hit(&prepared, b"k", Timestamp::from_nanos(0), 1).await?;
    ///     assert_eq!(local.allowed, redis.allowed());
    /// }
    /// # Ok(())
    /// # }
    /// ```
    pub fn limits(&self) -> &[TickRate] {
        &self.limits
    }

    /// The Redis key holding `key`'s state: the policy's prefix, then `key` as it is when
    /// it is at most [`MAX_PLAIN_KEY_LEN`](crate::MAX_PLAIN_KEY_LEN) bytes long, and its
    /// SHA-256 digest otherwise (see the crate's `# Layout`).
    ///
    /// ```
    /// # async fn run() -> Result<(), Box<dyn std::error::Error>> {
    /// use tollgate::{Policy, Store};
    /// let store = tollgate_redis::RedisStore::connect("redis://127.0.0.1:6379").await?;
    /// let p = store.prepare("login", &Policy::fixed_window("5/minute".parse()?));
    /// assert!(p.redis_key(b"alice").starts_with(b"tollgate:login:"));
    /// assert!(p.redis_key(b"alice").ends_with(b":alice"));
    /// # Ok(())
    /// # }
    /// ```
    pub fn redis_key(&self, key: &[u8]) -> Vec<u8> {
        let mut full = Vec::with_capacity(self.key_prefix.len() + client_key_len(key));
        full.extend_from_slice(&self.key_prefix);
        push_client_key(&mut full, key);
        full
    }
}

impl RedisStore {
    /// Connects to one Redis server: `redis://[user:password@]host[:port][/db]`, or
    /// `rediss://...` for TLS.
    ///
    /// Fails within about a second when the server is unreachable (a connection timeout of
    /// one second, one attempt); messages never show the password.
    ///
    /// ```
    /// use tollgate_redis::RedisStore;
    ///
    /// # #[tokio::main(flavor = "current_thread")]
    /// # async fn main() -> Result<(), Box<dyn std::error::Error>> {
    /// let err = RedisStore::connect("redis://:s3cret@127.0.0.1:1").await.unwrap_err(); // no server there
    /// assert!(err.to_string().starts_with("store unavailable: cannot connect to redis at redis://***@127.0.0.1:1: "));
    /// assert!(!err.to_string().contains("s3cret"));
    /// assert!(RedisStore::connect("http://127.0.0.1:6379").await.is_err()); // not a Redis URI
    /// # Ok(())
    /// # }
    /// ```
    pub async fn connect(uri: &str) -> Result<Self, StoreError> {
        let client = Client::open(uri).map_err(StoreError::unavailable)?;
        let manager = client
            .get_connection_manager_with_config(manager_config())
            .await
            .map_err(|e| unavailable(uri, e))?;
        Ok(Self::new(Connection::Single(manager)))
    }

    /// A store for one Redis server that connects on its first call instead of now, so that
    /// it can be made while Redis is down: calls fail (as [`StoreError`]s a
    /// [`tollgate::Failover`] can act on) until Redis is there, and are counted in Redis from
    /// then on. Fails only for a URI that is not a Redis URI. Must be called within a tokio
    /// runtime.
    ///
    /// ```
    /// use tollgate::{Policy, Store, Timestamp};
    /// use tollgate_redis::RedisStore;
    ///
    /// # #[tokio::main(flavor = "current_thread")]
    /// # async fn main() -> Result<(), Box<dyn std::error::Error>> {
    /// let store = RedisStore::connect_lazily("redis://127.0.0.1:1")?; // nothing there yet
    /// let p = store.prepare("p", &Policy::fixed_window("5/minute".parse()?));
    /// assert!(store.hit(&p, b"k", Timestamp::from_nanos(0), 1).await.is_err());
    /// assert!(RedisStore::connect_lazily("http://127.0.0.1:6379").is_err());
    /// # Ok(())
    /// # }
    /// ```
    pub fn connect_lazily(uri: &str) -> Result<Self, StoreError> {
        let client = Client::open(uri).map_err(StoreError::unavailable)?;
        let manager = ConnectionManager::new_lazy_with_config(client, manager_config())
            .map_err(|e| unavailable(uri, e))?;
        Ok(Self::new(Connection::Single(manager)))
    }

    /// Connects to a Redis Cluster through any of its nodes (`redis://host:port` each).
    /// Redirections (`MOVED`, `ASK`) are followed by the client.
    ///
    /// ```
    /// use tollgate_redis::RedisStore;
    ///
    /// # #[tokio::main(flavor = "current_thread")]
    /// # async fn main() -> Result<(), Box<dyn std::error::Error>> {
    /// let nodes = ["redis://127.0.0.1:1".to_owned(), "redis://127.0.0.1:2".to_owned()]; // none there
    /// let err = RedisStore::connect_cluster(&nodes).await.unwrap_err();
    /// assert!(err.to_string().starts_with("store unavailable: cannot connect to redis at redis://127.0.0.1:1,redis://127.0.0.1:2: "));
    /// # Ok(())
    /// # }
    /// ```
    pub async fn connect_cluster(nodes: &[String]) -> Result<Self, StoreError> {
        let client = ClusterClient::builder(nodes.iter().map(String::as_str))
            .connection_timeout(Duration::from_secs(1))
            .retries(2)
            .min_retry_wait(10)
            .max_retry_wait(100)
            .build()
            .map_err(StoreError::unavailable)?;
        let connection = client
            .get_async_connection()
            .await
            .map_err(|e| unavailable(&nodes.join(","), e))?;
        Ok(Self::new(Connection::Cluster(connection)))
    }

    fn new(connection: Connection) -> Self {
        Self {
            connection,
            prefix: Arc::from(DEFAULT_PREFIX.as_bytes()),
            timeout: DEFAULT_TIMEOUT,
            client_time: false,
            late: Arc::default(),
        }
    }

    /// What is known of the hits that timed out so far: how many, how many Redis charged
    /// after all, how many of those were given back (their request refused). Clones share
    /// the counts.
    ///
    /// ```
    /// use tollgate_redis::RedisStore;
    ///
    /// # #[tokio::main(flavor = "current_thread")]
    /// # async fn main() -> Result<(), Box<dyn std::error::Error>> {
    /// let store = RedisStore::connect_lazily("redis://127.0.0.1:6379")?;
    /// assert_eq!(store.late_hits().timed_out, 0);
    /// # Ok(())
    /// # }
    /// ```
    pub fn late_hits(&self) -> LateHitStats {
        self.late.stats()
    }

    /// Sets the prefix of every key (default [`DEFAULT_PREFIX`]); applies to policies
    /// prepared from now on.
    ///
    /// ```no_run
    /// use tollgate::{Policy, Store};
    /// use tollgate_redis::RedisStore;
    ///
    /// # #[tokio::main(flavor = "current_thread")]
    /// # async fn main() -> Result<(), Box<dyn std::error::Error>> {
    /// let store = RedisStore::connect("redis://127.0.0.1:6379").await?.with_prefix("shop:rl:");
    /// let login = store.prepare("login", &Policy::fixed_window("5/minute".parse()?));
    /// assert!(login.redis_key(b"alice").starts_with(b"shop:rl:login:"));
    /// # Ok(())
    /// # }
    /// ```
    pub fn with_prefix(mut self, prefix: &str) -> Self {
        self.prefix = Arc::from(prefix.as_bytes());
        self
    }

    /// Sets how long a call may take before it fails with a timeout (default
    /// [`DEFAULT_TIMEOUT`]).
    ///
    /// ```no_run
    /// use std::time::Duration;
    /// use tollgate_redis::RedisStore;
    ///
    /// # #[tokio::main(flavor = "current_thread")]
    /// # async fn main() -> Result<(), Box<dyn std::error::Error>> {
    /// let store = RedisStore::connect("redis://127.0.0.1:6379").await?;
    /// assert!(format!("{store:?}").contains("timeout: 50ms")); // DEFAULT_TIMEOUT
    /// let patient = store.with_timeout(Duration::from_millis(250));
    /// assert!(format!("{patient:?}").contains("timeout: 250ms"));
    /// # Ok(())
    /// # }
    /// ```
    pub fn with_timeout(mut self, timeout: Duration) -> Self {
        self.timeout = timeout;
        self
    }

    /// Uses the limiter's clock instead of the Redis server's `TIME`. For deterministic
    /// tests; in production, hosts with skewed clocks would disagree.
    ///
    /// ```no_run
    /// use std::time::Duration;
    /// use tollgate::{Limiter, ManualClock, Policy};
    /// use tollgate_redis::RedisStore;
    ///
    /// # #[tokio::main(flavor = "current_thread")]
    /// # async fn main() -> Result<(), Box<dyn std::error::Error>> {
    /// let store = RedisStore::connect("redis://127.0.0.1:6379").await?.with_client_time();
    /// let clock = ManualClock::new();
    /// let login = Limiter::new(store).with_clock(clock.clone()).policy("login", Policy::fixed_window("1/minute".parse()?));
    /// # login.reset("alice").await?;
    /// assert!(login.hit("alice").await?.allowed());
    /// assert!(!login.hit("alice").await?.allowed());
    /// clock.advance(Duration::from_secs(60)); // the window ends by the limiter's clock
    /// assert!(login.hit("alice").await?.allowed());
    /// # Ok(())
    /// # }
    /// ```
    pub fn with_client_time(mut self) -> Self {
        self.client_time = true;
        self
    }

    /// A call of `script` (the policy's apply or refund script) for `key`, with the arguments
    /// every script takes (see `src/lua/state.lua`).
    fn invocation<'s>(
        &self,
        script: &'s redis::Script,
        policy: &PreparedRedis,
        key: &[u8],
        now: Timestamp,
        cost: u64,
    ) -> redis::ScriptInvocation<'s> {
        let mut invocation = script.key(policy.redis_key(key));
        if self.client_time {
            invocation.arg(now.as_nanos() / (policy.tick_us * 1_000));
        } else {
            invocation.arg("");
        }
        invocation
            .arg(cost)
            .arg(policy.tick_us)
            .arg(policy.limits.len());
        for limit in &policy.limits {
            invocation
                .arg(limit.amount())
                .arg(limit.capacity())
                .arg(limit.window());
        }
        invocation
    }
}

/// A short, stable fingerprint of a policy (FNV-1a of its canonical text), so that a changed
/// policy starts from fresh keys instead of reading states of another shape.
fn fingerprint(policy: &Policy) -> String {
    let hash = policy.to_string().bytes().fold(0x811c_9dc5_u32, |h, b| {
        (h ^ u32::from(b)).wrapping_mul(0x0100_0193)
    });
    format!("{hash:08x}")
}

impl Store for RedisStore {
    type Prepared = PreparedRedis;

    /// One for a single server; the 16384 hash slots of a cluster.
    fn failure_domains(&self) -> usize {
        self.connection.failure_domains()
    }

    /// The hash slot of the key's Redis key, in a cluster.
    fn failure_domain(&self, policy: &PreparedRedis, key: &[u8]) -> usize {
        self.connection.failure_domain(&policy.redis_key(key))
    }

    fn prepare(&self, name: &str, policy: &Policy) -> PreparedRedis {
        let tick_us = tick_us(policy);
        let limits = policy.limits(Duration::from_micros(tick_us));
        let mut key_prefix = self.prefix.to_vec();
        key_prefix.extend_from_slice(name.as_bytes());
        key_prefix.push(b':');
        key_prefix.extend_from_slice(fingerprint(policy).as_bytes());
        key_prefix.push(b':');
        PreparedRedis {
            scripts: script::scripts(policy.strategy()),
            key_prefix,
            tick_us,
            limits,
        }
    }

    fn hit<'a>(
        &'a self,
        policy: &'a PreparedRedis,
        key: &[u8],
        now: Timestamp,
        cost: u64,
    ) -> impl Future<Output = Result<Decision, StoreError>> + Send + use<'a> {
        let invocation = self.invocation(&policy.scripts.apply, policy, key, now, cost);
        // For the refund of a late charge, should one be given back.
        let key = key.to_vec();
        async move {
            let reply = self.connection.send(Command::Invoke(invocation));
            let reply: Vec<i64> = match within(self.timeout, reply).await {
                Ok(reply) => reply.map_err(StoreError::unavailable)?,
                Err(pending) => {
                    let refund = self.invocation(&policy.scripts.refund, policy, &key, now, cost);
                    let refund = self.connection.send(Command::Invoke(refund));
                    return Err(self
                        .late
                        .watch(timed_out(self.timeout), pending, cost, refund));
                }
            };
            let outcome = outcome(&reply).ok_or_else(|| {
                StoreError::unavailable(format!("unexpected reply from the script: {reply:?}"))
            })?;
            Ok(outcome.into_decision(policy.tick()))
        }
    }

    fn refund<'a>(
        &'a self,
        policy: &'a PreparedRedis,
        key: &[u8],
        now: Timestamp,
        cost: u64,
    ) -> impl Future<Output = Result<(), StoreError>> + Send + use<'a> {
        let invocation =
            (cost > 0).then(|| self.invocation(&policy.scripts.refund, policy, key, now, cost));
        async move {
            if let Some(invocation) = invocation {
                let command = Command::Invoke(invocation);
                let _refunded: i64 = self.connection.call(self.timeout, command).await?;
            }
            Ok(())
        }
    }

    async fn reset(&self, policy: &PreparedRedis, key: &[u8]) -> Result<(), StoreError> {
        let command = Command::Del(policy.redis_key(key));
        let _deleted: i64 = self.connection.call(self.timeout, command).await?;
        Ok(())
    }
}

/// Reads the script's reply: `{allowed, limit, remaining, reset_after, retry_after, window}`.
fn outcome(reply: &[i64]) -> Option<TickDecision> {
    let &[allowed, limit, remaining, reset_after, retry_after, window] = reply else {
        return None;
    };
    let count = |n: i64| u64::try_from(n).ok();
    Some(TickDecision {
        allowed: allowed == 1,
        limit: count(limit)?,
        remaining: count(remaining)?,
        reset_after: count(reset_after)?,
        retry_after: if retry_after < 0 {
            None
        } else {
            Some(count(retry_after)?)
        },
        window: count(window)?,
    })
}
