//! [`PreparedRedis`]: a policy prepared for a [`RedisStore`](crate::RedisStore): its scripts,
//! the prefix of its keys, its tick and the arguments every call passes; and the decisions
//! its scripts reply with.

use std::sync::Arc;
use std::time::Duration;

use redis::Script;
use tollgate::Strategy;
use tollgate::strategy::{BanRule, BanStatus, TickDecision, TickRate};
use tollgate::{Decision, Policy, StoreError, Timestamp};

use crate::connection::Command;
use crate::key::{client_key_len, push_client_key};
use crate::script::{self, Scripts};
use crate::tick::tick_us;

/// A policy prepared for a [`RedisStore`](crate::RedisStore): its scripts, key prefix, tick and arguments.
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
    /// The policy's ban, in the same ticks.
    ban: Option<BanRule>,
    /// The hit script with the policy's numbers baked in, for the shapes that have one (a
    /// fixed window of one rate, no ban, no delay); hits of others run the general script.
    baked: Option<Arc<Script>>,
    /// What the baked script multiplies the remaining units by to answer an allowed hit
    /// with one number, `remaining × pack + reset_after`: the window and one; 0 where that
    /// number could pass 2^53 (it answers `{remaining, reset_after}` then).
    pack: u64,
}

impl PreparedRedis {
    /// `policy` prepared under `name`, its keys starting with `prefix`.
    pub(crate) fn new(prefix: &[u8], name: &str, policy: &Policy) -> Self {
        let tick_us = tick_us(policy);
        let tick = Duration::from_micros(tick_us);
        let mut key_prefix = prefix.to_vec();
        key_prefix.extend_from_slice(name.as_bytes());
        key_prefix.push(b':');
        key_prefix.extend_from_slice(fingerprint(policy).as_bytes());
        key_prefix.push(b':');
        let limits = policy.limits(tick);
        let ban = policy.ban_rule(tick);
        let (baked, pack) = match (policy.strategy(), &*limits, &ban) {
            (Strategy::FixedWindow, [limit], None)
                if limit.amount() > 0 && limit.max_delay() == 0 =>
            {
                let pack = packing(limit);
                let script = script::fixed_window_one(limit, tick_us, pack);
                (Some(Arc::new(script)), pack)
            }
            _ => (None, 0),
        };
        Self {
            scripts: script::scripts(policy.strategy()),
            key_prefix,
            tick_us,
            limits,
            ban,
            baked,
            pack,
        }
    }

    /// The SHA1 of the script a hit runs: the strategy's general script, or one with this
    /// policy's numbers baked in (a fixed window of one rate, with no ban and no delay), whose
    /// call passes two arguments and gets two or three numbers back.
    ///
    /// ```
    /// use tollgate::{Policy, Store};
    /// use tollgate_redis::RedisStore;
    ///
    /// # #[tokio::main(flavor = "current_thread")]
    /// # async fn main() -> Result<(), Box<dyn std::error::Error>> {
    /// let store = RedisStore::connect_lazily("redis://127.0.0.1:6379")?; // prepares offline
    /// let sha = |rates: &str| store.prepare("p", &Policy::fixed_window(rates.parse().unwrap())).hit_script_sha().to_owned();
    /// assert_ne!(sha("5/minute"), sha("6/minute")); // baked: one script per policy
    /// assert_eq!(sha("5/minute; 100/hour"), sha("6/minute; 100/hour")); // the general script
    /// # Ok(())
    /// # }
    /// ```
    pub fn hit_script_sha(&self) -> &str {
        match &self.baked {
            Some(script) => script.get_hash(),
            None => self.scripts.apply.get_hash(),
        }
    }

    /// `now` in the ticks the scripts count in.
    pub(crate) fn ticks(&self, now: Timestamp) -> u64 {
        now.as_nanos() / (self.tick_us * 1_000)
    }

    /// The call of a hit by the policy's baked script, when it has one (see
    /// [`PreparedRedis::hit_script_sha`]): `now` is the client's time, `None` for the server's.
    pub(crate) fn baked_hit(
        &self,
        key: &[u8],
        now: Option<Timestamp>,
        cost: u64,
    ) -> Option<Command> {
        let script = self.baked.as_ref()?;
        Some(Command::Baked {
            script: Arc::clone(script),
            key: self.redis_key(key),
            now: now.map(|now| self.ticks(now)),
            cost,
        })
    }

    /// The strategy's scripts.
    pub(crate) fn scripts(&self) -> &'static Scripts {
        self.scripts
    }

    /// The tick in microseconds.
    pub(crate) fn tick_us(&self) -> u64 {
        self.tick_us
    }

    /// The policy's ban as the script applies it, in ticks of [`PreparedRedis::tick`]: what
    /// [`tollgate::strategy::apply_banned`] must be given to make the same decisions.
    pub fn ban_rule(&self) -> Option<&BanRule> {
        self.ban.as_ref()
    }

    /// The decision a script replied with, in [`Decision`]'s durations: a general script's
    /// eight numbers, or the baked script's two or three.
    pub(crate) fn decision(&self, reply: &[i64]) -> Result<Decision, StoreError> {
        let outcome = match (&self.baked, &*self.limits) {
            (Some(_), [limit]) if reply.len() < 8 => baked_outcome(limit, self.pack, reply),
            _ => outcome(reply),
        };
        let outcome = outcome.ok_or_else(|| {
            StoreError::unavailable(format!("unexpected reply from the script: {reply:?}"))
        })?;
        Ok(outcome.into_decision(self.tick()))
    }
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

/// A short, stable fingerprint of a policy (FNV-1a of its canonical text), so that a changed
/// policy starts from fresh keys instead of reading states of another shape.
fn fingerprint(policy: &Policy) -> String {
    let hash = policy.to_string().bytes().fold(0x811c_9dc5_u32, |h, b| {
        (h ^ u32::from(b)).wrapping_mul(0x0100_0193)
    });
    format!("{hash:08x}")
}

/// Reads the script's reply: `{allowed, limit, remaining, reset_after, retry_after, window,
/// ban, delay}` (see `lua/decide.lua`).
fn outcome(reply: &[i64]) -> Option<TickDecision> {
    let &[
        allowed,
        limit,
        remaining,
        reset_after,
        retry_after,
        window,
        ban,
        delay,
    ] = reply
    else {
        return None;
    };
    let ban = match ban {
        0 => BanStatus::Clear,
        1 => BanStatus::Started,
        2 => BanStatus::Ongoing,
        _ => return None,
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
        ban,
        delay: count(delay)?,
    })
}

/// The `pack` of a baked fixed window of `limit` (see [`PreparedRedis`]): `window + 1`, so
/// that `remaining × pack + reset_after` (`reset_after` at most the window) tells both apart,
/// when that number stays below 2^53, exact in Lua's doubles; else 0.
fn packing(limit: &TickRate) -> u64 {
    let pack = u128::from(limit.window()) + 1;
    let most = u128::from(limit.capacity()) * pack + pack - 1;
    if most < 1 << 53 {
        u64::try_from(pack).unwrap_or(0)
    } else {
        0
    }
}

/// A hit script's reply: its numbers, or the one number it answered with.
pub(crate) struct Numbers(pub(crate) Vec<i64>);

impl Numbers {
    /// Whether the reply allows the hit: a general script's eight numbers start with 1; the
    /// baked script answers an allowed hit with one or two numbers, a denied one with three.
    pub(crate) fn allowed(&self) -> bool {
        match *self.0 {
            [allowed, _, _, _, _, _, _, _] => allowed == 1,
            [_] | [_, _] => true,
            _ => false,
        }
    }
}

impl redis::FromRedisValue for Numbers {
    fn from_redis_value_ref(value: &redis::Value) -> Result<Self, redis::ParsingError> {
        match value {
            redis::Value::Int(n) => Ok(Self(vec![*n])),
            other => Vec::from_redis_value_ref(other).map(Self),
        }
    }

    fn from_redis_value(value: redis::Value) -> Result<Self, redis::ParsingError> {
        Self::from_redis_value_ref(&value)
    }
}

/// Reads the baked fixed-window script's reply for its one rate `limit`: when allowed,
/// `remaining × pack + reset_after` (`pack` > 0) or `{remaining, reset_after}`; when
/// denied, `{remaining, reset_after, retry_after}` (see `lua/fixed_window_one.lua`).
fn baked_outcome(limit: &TickRate, pack: u64, reply: &[i64]) -> Option<TickDecision> {
    let count = |n: i64| u64::try_from(n).ok();
    let (remaining, reset_after, retry_after) = match *reply {
        [packed] if pack > 0 => {
            let packed = count(packed)?;
            let (remaining, reset_after) = (packed / pack, packed % pack);
            (
                i64::try_from(remaining).ok()?,
                i64::try_from(reset_after).ok()?,
                None,
            )
        }
        [remaining, reset_after] => (remaining, reset_after, None),
        [remaining, reset_after, retry_after] => {
            (remaining, reset_after, Some(count(retry_after)?))
        }
        _ => return None,
    };
    Some(TickDecision {
        allowed: retry_after.is_none(),
        limit: limit.capacity(),
        remaining: count(remaining)?,
        reset_after: count(reset_after)?,
        retry_after,
        window: limit.window(),
        ban: BanStatus::Clear,
        delay: 0,
    })
}
