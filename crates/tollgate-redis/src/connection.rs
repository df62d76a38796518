//! The connection a [`RedisStore`](crate::RedisStore) sends on (one server or a cluster), how
//! it is made and remade, and the commands it sends; errors named with the URI redacted.

use std::time::Duration;

use redis::RedisError;
use redis::aio::{ConnectionManager, ConnectionManagerConfig};
use redis::cluster_async::ClusterConnection;
use tollgate::StoreError;

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

/// What a call sends.
pub(crate) enum Command<'a> {
    /// A script call.
    Invoke(&'a redis::ScriptInvocation<'a>),
    /// `DEL key`.
    Del(&'a [u8]),
}

impl Connection {
    pub(crate) async fn run<T: redis::FromRedisValue>(
        &mut self,
        command: &Command<'_>,
    ) -> Result<T, RedisError> {
        match command {
            Command::Invoke(invocation) => match self {
                Connection::Single(c) => invocation.invoke_async(c).await,
                Connection::Cluster(c) => invocation.invoke_async(c).await,
            },
            Command::Del(key) => {
                let mut cmd = redis::cmd("DEL");
                cmd.arg(*key);
                match self {
                    Connection::Single(c) => cmd.query_async(c).await,
                    Connection::Cluster(c) => cmd.query_async(c).await,
                }
            }
        }
    }
}
