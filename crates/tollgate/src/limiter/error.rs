//! [`Error`]: why a hit, a refund or a reset through a policy handle gave no answer.

use std::fmt;

use crate::store::StoreError;

/// Why a [`crate::PolicyHandle`] or a [`crate::Limiter`] call gave no decision.
///
/// ```
/// use tollgate::{Error, Limiter, MemoryStore, Policy, Rate};
///
/// # futures_executor::block_on(async {
/// let bucket = Policy::token_bucket(Rate::per_minute(10).into()).expect("a valid token bucket");
/// let export = Limiter::new(MemoryStore::new()).policy("export", bucket);
/// let err = export.hit_cost("u1", 11).await.unwrap_err();
/// assert!(matches!(err, Error::CostExceedsLimit { cost: 11, max_cost: 10, .. }));
/// assert_eq!(
///     err.to_string(),
///     "a hit of cost 11 can never fit policy \"export\", which allows at most 10 at once"
/// );
/// # });
/// ```
#[derive(Debug)]
#[non_exhaustive]
pub enum Error {
    /// The hit costs more than the policy could ever allow in one go.
    CostExceedsLimit {
        /// The policy's name.
        policy: String,
        /// The cost asked for.
        cost: u64,
        /// The largest cost the policy allows ([`crate::Policy::max_cost`]).
        max_cost: u64,
    },
    /// The store failed.
    Store(StoreError),
}

impl fmt::Display for Error {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Error::CostExceedsLimit {
                policy,
                cost,
                max_cost,
            } => write!(
                f,
                "a hit of cost {cost} can never fit policy {policy:?}, which allows at most {max_cost} at once"
            ),
            Error::Store(err) => err.fmt(f),
        }
    }
}

impl std::error::Error for Error {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        match self {
            Error::Store(err) => Some(err),
            _ => None,
        }
    }
}

impl From<StoreError> for Error {
    fn from(err: StoreError) -> Self {
        Error::Store(err)
    }
}
