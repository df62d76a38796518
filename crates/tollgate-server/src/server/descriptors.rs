//! File descriptors, which every connection takes: `max_connections` must fit in what the
//! process may open, or a flood on one listener uses up every descriptor and no listener
//! can accept anyone (nor the proxy reach its upstream, nor Redis be reconnected) until the
//! flood times out. At start the soft limit is raised to the hard one, and each listener's
//! cap lowered to its part of it where the caps together would not fit (with a warning).

use crate::config::Connections;

/// Descriptors kept apart from client connections: the storage's connections, the
/// upstream's idle pooled connections, the configuration files, the log.
pub(crate) const RESERVED_DESCRIPTORS: u64 = 256;

/// `limits` with `max_connections` lowered, if need be, so that `listeners` descriptors per
/// connection (one per listener, two for the proxy's: the client's and the upstream's) fit
/// in the open file limit, after raising it as far as the process may.
pub(crate) fn fitted(limits: Connections, listeners: u64) -> Connections {
    match raise_open_files() {
        Some(open_files) => fit(limits, listeners, open_files),
        None => limits,
    }
}

/// `limits` with `max_connections` at most each listener's part of `open_files`, less
/// [`RESERVED_DESCRIPTORS`] (at least 1).
fn fit(limits: Connections, listeners: u64, open_files: u64) -> Connections {
    let part = open_files.saturating_sub(RESERVED_DESCRIPTORS) / listeners.max(1);
    let part = usize::try_from(part).unwrap_or(usize::MAX).max(1);
    if part >= limits.max_connections {
        return limits;
    }
    tracing::warn!(
        "server.max_connections {} does not fit in this process's open file limit ({open_files}, \
         {RESERVED_DESCRIPTORS} kept for other uses, {listeners} per connection over the \
         listeners): each listener holds at most {part} connections; raise the limit (ulimit -n, \
         LimitNOFILE=) to allow more",
        limits.max_connections
    );
    Connections {
        max_connections: part,
        ..limits
    }
}

/// Raises the soft limit of open files to the hard one; the soft limit then, if known.
#[cfg(unix)]
fn raise_open_files() -> Option<u64> {
    use rustix::process::{Resource, Rlimit, getrlimit, setrlimit};

    let limit = getrlimit(Resource::Nofile);
    if limit.current.is_some() && limit.current != limit.maximum {
        let raised = Rlimit {
            current: limit.maximum,
            maximum: limit.maximum,
        };
        if setrlimit(Resource::Nofile, raised).is_ok() {
            return limit.maximum;
        }
    }
    limit.current
}

#[cfg(not(unix))]
fn raise_open_files() -> Option<u64> {
    None
}

#[cfg(test)]
mod tests {
    use super::{RESERVED_DESCRIPTORS, fit};
    use crate::config::Connections;

    #[test]
    fn caps_are_lowered_to_fit_the_open_file_limit() {
        let limits = Connections::default(); // 10,000 connections a listener
        assert_eq!(fit(limits, 3, 1_000_000), limits, "room enough");
        let fitted = fit(limits, 3, 1024);
        assert_eq!(
            fitted.max_connections,
            (1024 - RESERVED_DESCRIPTORS as usize) / 3
        );
        assert_eq!(fitted.header_timeout, limits.header_timeout);
        assert_eq!(fit(limits, 2, 100).max_connections, 1, "at least one");
    }
}
