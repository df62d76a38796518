//! The connection a [`RedisStore`](crate::RedisStore) sends on (one server or a cluster), how
//! it is made and remade, the commands it sends and how long it waits for them; the failure
//! domains it has (a cluster's hash slots); errors named with the URI redacted.

use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::time::Duration;

use redis::RedisError;
use redis::aio::{ConnectionManager, ConnectionManagerConfig};
use redis::cluster_async::ClusterConnection;
use tollgate::StoreError;

/// The hash slots of a Redis Cluster.
pub(crate) const CLUSTER_SLOTS: usize = 16384;

/// One server's self-reconnecting connection, or a cluster's.
#[derive(Clone)]
pub(crate) enum Connection {
    Single(ConnectionManager),
    Cluster(ClusterConnection),
}

/// How a single server's connection is made and remade: one second to connect, one retry.
pub(crate) fn manager_config() -> ConnectionManagerConfig {
    ConnectionManagerConfig::new()
        .set_connection_timeout(Some(Duration::from_secs(1)))
        .set_response_timeout(None)
        .set_number_of_retries(1)
        .set_max_delay(Duration::from_millis(100))
}

/// Whether `err` proves the command never reached Redis: the connection it was to be sent on
/// was refused.
pub(crate) fn never_sent(err: &RedisError) -> bool {
    err.is_connection_refusal()
}

pub(crate) fn unavailable(at: &str, err: RedisError) -> StoreError {
    StoreError::unavailable(format!(
        "cannot connect to redis at {}: {err}",
        redacted(at)
    ))
}

/// `uri` with any `user:password@` replaced by `***@`, fit for messages and logs.
///
/// ```
/// assert_eq!(
///     tollgate_redis::redacted("redis://app:s3cret@10.0.0.5:6379/0"),
///     "redis://***@10.0.0.5:6379/0"
/// );
/// assert_eq!(tollgate_redis::redacted("redis://10.0.0.5"), "redis://10.0.0.5");
/// ```
pub fn redacted(uri: &str) -> String {
    uri.split(',')
        .map(|part| {
            let (scheme, rest) = part.split_once("://").unwrap_or(("", part));
            let authority_end = rest.find('/').unwrap_or(rest.len());
            match rest[..authority_end].rfind('@') {
                Some(at) if scheme.is_empty() => format!("***{}", &rest[at..]),
                Some(at) => format!("{scheme}://***{}", &rest[at..]),
                None => part.to_owned(),
            }
        })
        .collect::<Vec<_>>()
        .join(",")
}

/// What a call sends, owned, so that a reply can be waited for after its caller stopped.
pub(crate) enum Command {
    /// A script call.
    Invoke(redis::ScriptInvocation<'static>),
    /// A hit by a script with its policy's numbers baked in (see
    /// [`PreparedRedis::hit_script_sha`](crate::PreparedRedis::hit_script_sha)): `now` in
    /// ticks (`None`: the server's time) and the cost are its only arguments.
    Baked {
        script: Arc<redis::Script>,
        key: Vec<u8>,
        now: Option<u64>,
        cost: u64,
    },
    /// `DEL key`.
    Del(Vec<u8>),
}

/// A command's reply on its way: a future that owns all it needs.
pub(crate) type Reply<T> = Pin<Box<dyn Future<Output = Result<T, RedisError>> + Send>>;

/// Waits for `reply` for at most `timeout`: the reply, or the reply still on its way.
pub(crate) async fn within<T>(
    timeout: Duration,
    mut reply: Reply<T>,
) -> Result<Result<T, RedisError>, Reply<T>> {
    match tokio::time::timeout(timeout, &mut reply).await {
        Ok(result) => Ok(result),
        Err(_) => Err(reply),
    }
}

/// The error of a call that got no reply within `timeout`.
pub(crate) fn timed_out(timeout: Duration) -> StoreError {
    StoreError::timeout(format!("redis did not answer within {timeout:?}"))
}

/// The hash slot of `key` in a Redis Cluster, as Redis computes it: CRC16 (XMODEM) of the
/// key, or of its hash tag (what is between the first `{` and the next `}`, if not empty),
/// modulo 16384.
pub(crate) fn hash_slot(key: &[u8]) -> usize {
    let tagged = key
        .iter()
        .position(|&b| b == b'{')
        .and_then(|open| {
            let rest = &key[open + 1..];
            rest.iter()
                .position(|&b| b == b'}')
                .map(|close| &rest[..close])
        })
        .filter(|tag| !tag.is_empty());
    let hashed = tagged.unwrap_or(key);
    usize::from(crc16::State::<crc16::XMODEM>::calculate(hashed)) % CLUSTER_SLOTS
}

impl Connection {
    /// How many failure domains the connection's keys fall into: one server, or the hash
    /// slots of a cluster (a master that dies fails the keys of its slots only).
    pub(crate) fn failure_domains(&self) -> usize {
        match self {
            Connection::Single(_) => 1,
            Connection::Cluster(_) => CLUSTER_SLOTS,
        }
    }

    /// The failure domain of the Redis key `key`: its hash slot in a cluster, else 0.
    pub(crate) fn failure_domain(&self, key: &[u8]) -> usize {
        match self {
            Connection::Single(_) => 0,
            Connection::Cluster(_) => hash_slot(key),
        }
    }

    /// Sends `command`, and once more when the first attempt's connection was refused (the
    /// command was never sent, so a second attempt cannot count a hit twice). Nothing is sent
    /// until the reply is first polled.
    pub(crate) fn send<T: redis::FromRedisValue + Send + 'static>(
        &self,
        command: Command,
    ) -> Reply<T> {
        let mut connection = self.clone();
        Box::pin(async move {
            match connection.run(&command).await {
                Err(err) if never_sent(&err) => connection.run(&command).await,
                result => result,
            }
        })
    }

    /// Sends `command` (see [`Connection::send`]) and waits at most `timeout` for its reply.
    /// The client remembers the last reconnect's failure and returns it to the next call even
    /// when Redis is back; the second attempt of a refused call waits on the reconnect that
    /// call started.
    pub(crate) async fn call<T: redis::FromRedisValue + Send + 'static>(
        &self,
        timeout: Duration,
        command: Command,
    ) -> Result<T, StoreError> {
        match within(timeout, self.send(command)).await {
            Ok(Ok(value)) => Ok(value),
            Ok(Err(err)) => Err(StoreError::unavailable(err)),
            Err(_) => Err(timed_out(timeout)),
        }
    }

    async fn run<T: redis::FromRedisValue>(&mut self, command: &Command) -> Result<T, RedisError> {
        match command {
            Command::Invoke(invocation) => match self {
                Connection::Single(c) => invocation.invoke_async(c).await,
                Connection::Cluster(c) => invocation.invoke_async(c).await,
            },
            Command::Baked {
                script,
                key,
                now,
                cost,
            } => {
                let mut invocation = script.key(key.as_slice());
                match now {
                    Some(now) => invocation.arg(now),
                    None => invocation.arg(""),
                };
                invocation.arg(cost);
                match self {
                    Connection::Single(c) => invocation.invoke_async(c).await,
                    Connection::Cluster(c) => invocation.invoke_async(c).await,
                }
            }
            Command::Del(key) => {
                let mut cmd = redis::cmd("DEL");
                cmd.arg(key.as_slice());
                match self {
                    Connection::Single(c) => cmd.query_async(c).await,
                    Connection::Cluster(c) => cmd.query_async(c).await,
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Slots as `CLUSTER KEYSLOT` gives them (Redis's own examples and tests).
    #[test]
    fn hash_slots_are_redis_s() {
        assert_eq!(hash_slot(b"123456789"), 0x31c3 % CLUSTER_SLOTS); // CRC16/XMODEM check value
        assert_eq!(hash_slot(b"foo"), 12182);
        assert_eq!(hash_slot(b"{user1000}.following"), hash_slot(b"user1000"));
        assert_eq!(hash_slot(b"foo{}{bar}"), hash_slot(b"foo{}{bar}")); // an empty tag: the whole key
        assert_ne!(hash_slot(b"foo{}{bar}"), hash_slot(b"bar"));
        assert_eq!(hash_slot(b"foo{{bar}}zap"), hash_slot(b"{bar"));
        assert_eq!(hash_slot(b"foo{bar}{zap}"), hash_slot(b"bar"));
    }
}
