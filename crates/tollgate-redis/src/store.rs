//! [`RedisStore`]: the states in Redis, each hit one atomic script call.

use std::fmt;
use std::future::Future;
use std::sync::Arc;
use std::time::Duration;

use redis::Client;
use redis::aio::ConnectionManager;
use redis::cluster::ClusterClient;
use tollgate::{
    Acquisition, ConcurrencyLimit, Decision, GiveBack, Grant, LeaseId, MAX_AMOUNT, Policy, Store,
    StoreError, Timestamp,
};

use crate::connection::{Command, Connection, manager_config, timed_out, unavailable, within};
use crate::late::{LateHitStats, LateHits};
use crate::leases::{PreparedRedisLeases, acquisition};
use crate::prepared::{Numbers, PreparedRedis};

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
        let tick_us = policy.tick_us();
        if self.client_time {
            invocation.arg(policy.ticks(now));
        } else {
            invocation.arg("");
        }
        invocation.arg(cost).arg(tick_us).arg(policy.limits().len());
        for limit in policy.limits() {
            invocation
                .arg(limit.amount())
                .arg(limit.capacity())
                .arg(limit.window())
                .arg(limit.max_delay());
        }
        if let Some(ban) = policy.ban_rule() {
            invocation
                .arg(ban.breaches().amount())
                .arg(ban.breaches().window())
                .arg(ban.duration());
        }
        invocation
    }
}

impl Store for RedisStore {
    type Prepared = PreparedRedis;
    type PreparedLeases = PreparedRedisLeases;

    fn prepare_leases(&self, name: &str, limit: &ConcurrencyLimit) -> PreparedRedisLeases {
        PreparedRedisLeases::new(&self.prefix, name, limit)
    }

    /// One `EVALSHA` of `lua/acquire.lua`. An acquire that times out is not watched: the
    /// lease it may have taken expires by itself.
    fn acquire<'a>(
        &'a self,
        leases: &'a PreparedRedisLeases,
        key: &[u8],
        lease: LeaseId,
        now: Timestamp,
    ) -> impl Future<Output = Result<Acquisition, StoreError>> + Send + use<'a> {
        let invocation = leases.acquire(key, lease, self.client_time.then_some(now));
        async move {
            let reply: Vec<i64> = self
                .connection
                .call(self.timeout, Command::Invoke(invocation))
                .await?;
            acquisition(&reply)
        }
    }

    /// One `EVALSHA` of `lua/release.lua`.
    fn release<'a>(
        &'a self,
        leases: &'a PreparedRedisLeases,
        key: &[u8],
        lease: LeaseId,
        now: Timestamp,
    ) -> impl Future<Output = Result<bool, StoreError>> + Send + use<'a> {
        let invocation = leases.release(key, lease, self.client_time.then_some(now));
        async move {
            let released: i64 = self
                .connection
                .call(self.timeout, Command::Invoke(invocation))
                .await?;
            Ok(released == 1)
        }
    }

    /// One for a single server; the 16384 hash slots of a cluster.
    fn failure_domains(&self) -> usize {
        self.connection.failure_domains()
    }

    /// The hash slot of the key's Redis key, in a cluster.
    fn failure_domain(&self, policy: &PreparedRedis, key: &[u8]) -> usize {
        self.connection.failure_domain(&policy.redis_key(key))
    }

    fn prepare(&self, name: &str, policy: &Policy) -> PreparedRedis {
        PreparedRedis::new(&self.prefix, name, policy)
    }

    fn hit<'a>(
        &'a self,
        policy: &'a PreparedRedis,
        key: &[u8],
        now: Timestamp,
        cost: u64,
    ) -> impl Future<Output = Result<Decision, StoreError>> + Send + use<'a> {
        let command = policy
            .baked_hit(key, self.client_time.then_some(now), cost)
            .unwrap_or_else(|| {
                Command::Invoke(self.invocation(&policy.scripts().apply, policy, key, now, cost))
            });
        // For the refund of a late charge, should one be given back.
        let key = key.to_vec();
        async move {
            let reply = self.connection.send(command);
            let reply: Numbers = match within(self.timeout, reply).await {
                Ok(reply) => reply.map_err(StoreError::unavailable)?,
                Err(pending) => {
                    let refund = self.invocation(&policy.scripts().refund, policy, &key, now, cost);
                    let refund = self.connection.send(Command::Invoke(refund));
                    return Err(self
                        .late
                        .watch(timed_out(self.timeout), pending, cost, refund));
                }
            };
            policy.decision(&reply.0)
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
            (cost > 0).then(|| self.invocation(&policy.scripts().refund, policy, key, now, cost));
        async move {
            if let Some(invocation) = invocation {
                let command = Command::Invoke(invocation);
                let _refunded: i64 = self.connection.call(self.timeout, command).await?;
            }
            Ok(())
        }
    }

    /// One `EVALSHA` of the strategy's late-charge script. A late charge that times out is
    /// not watched: the charge is owed whatever the answer, so Redis may keep it.
    fn overdraw<'a>(
        &'a self,
        policy: &'a PreparedRedis,
        key: &[u8],
        now: Timestamp,
        cost: u64,
    ) -> impl Future<Output = Result<Decision, StoreError>> + Send + use<'a> {
        // Each rate takes at most twice its capacity, 2 x 10^12: a larger cost changes
        // nothing, and this one stays exact in Lua's doubles.
        let cost = cost.min(2 * MAX_AMOUNT);
        let invocation = self.invocation(&policy.scripts().overdraw, policy, key, now, cost);
        async move {
            let reply: Vec<i64> = self
                .connection
                .call(self.timeout, Command::Invoke(invocation))
                .await?;
            policy.decision(&reply)
        }
    }

    /// One `EVALSHA` of the strategy's quota lease script (`lua/take.lua`), the give-back
    /// included; for a policy with a ban, a refund and a hit of `need` (see [`Store::take`]).
    /// A take that times out is not watched: units it may have charged are lost to the key
    /// until its state resets, never admitted.
    fn take<'a>(
        &'a self,
        policy: &'a PreparedRedis,
        key: &[u8],
        now: Timestamp,
        need: u64,
        want: u64,
        give_back: GiveBack,
    ) -> impl Future<Output = Result<Grant, StoreError>> + Send + use<'a> {
        let banned = policy.ban_rule().is_some();
        let script = if banned {
            &policy.scripts().apply
        } else {
            &policy.scripts().take
        };
        let mut invocation = self.invocation(script, policy, key, now, need);
        let units = give_back.units().min(2 * MAX_AMOUNT);
        if !banned {
            let before = give_back
                .before()
                .map_or(-1, |tick| i64::try_from(tick).unwrap_or(i64::MAX));
            invocation.arg(want.max(need)).arg(units).arg(before);
        }
        let refund = (banned && units > 0)
            .then(|| self.invocation(&policy.scripts().refund, policy, key, now, units));
        async move {
            if let Some(refund) = refund {
                let command = Command::Invoke(refund);
                let _refunded: i64 = self.connection.call(self.timeout, command).await?;
            }
            let command = Command::Invoke(invocation);
            let reply: Vec<i64> = self.connection.call(self.timeout, command).await?;
            crate::grant::grant(policy, &reply, banned, need)
        }
    }

    async fn reset(&self, policy: &PreparedRedis, key: &[u8]) -> Result<(), StoreError> {
        let command = Command::Del(policy.redis_key(key));
        let _deleted: i64 = self.connection.call(self.timeout, command).await?;
        Ok(())
    }
}
