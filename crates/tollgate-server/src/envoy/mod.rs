//! Envoy's rate limit service (`envoy.service.ratelimit.v3.RateLimitService/ShouldRateLimit`)
//! over gRPC, configured with envoyproxy/ratelimit's YAML descriptor format.
//!
//! Envoy's `envoy.filters.http.ratelimit` filter sends, for each request, a domain and a
//! list of *descriptors*, each a list of `(key, value)` entries such as
//! `[("remote_address", "203.0.113.7")]` or `[("tenant", "acme"), ("user", "alice")]`. The
//! configuration ([`EnvoyConfig`]) is a tree of descriptors per domain; each node may carry a
//! rate limit, which becomes one tollgate policy (`envoy:{domain}:{path}`) in a
//! [`tollgate::Limiter`]. [`EnvoyRateLimiter`] answers requests from it; its
//! [`into_service`](EnvoyRateLimiter::into_service) is the tonic service to serve.
//!
//! ```yaml
//! domain: edge
//! descriptors:
//!   - key: remote_address            # any value: each address counts apart
//!     rate_limit: { unit: minute, requests_per_unit: 60 }
//!   - key: tenant
//!     value: acme                    # this value only; "acme*" would be a prefix
//!     descriptors:
//!       - key: user
//!         rate_limit:
//!           name: acme_user
//!           unit: second
//!           requests_per_unit: 10
//!           strategy: token-bucket   # tollgate's extension, with `burst`
//!           burst: 20
//!   - key: plan
//!     value: internal
//!     rate_limit:
//!       unlimited: true
//!       replaces: [{ name: acme_user }]
//!   - key: path
//!     value: /beta
//!     shadow_mode: true              # counted, never refused
//!     rate_limit: { unit: hour, requests_per_unit: 1000 }
//! ```
//!
//! # Matching
//!
//! A descriptor walks the domain's tree one entry at a time: at each level its key with its
//! exact value, else with a configured value ending in `*` that the value starts with (the
//! first in the file), else its key with no configured value (any value). The descriptor is
//! held to the rate limit of the node its *last* entry reaches; if an entry matches nothing,
//! or that node has no rate limit, the descriptor has no limit (status `OK` with no
//! `current_limit`). An unknown domain matches nothing. The key that pays is made of the
//! request's entries, so every distinct value (under a wildcard or a prefix) counts apart.
//!
//! A rate limit with `replaces` removes, for this request, the rate limits of other
//! descriptors whose `name` it lists: those descriptors are reported as having no limit and
//! are not counted. `unlimited: true` is always `OK` (with `limit_remaining` at `u32::MAX`)
//! and never counted. In `shadow_mode` a descriptor is counted, but a hit over the limit is
//! reported `OK` (and to the observer as [`Verdict::ShadowOverLimit`]).
//!
//! A descriptor's own `limit` (sent by Envoy from dynamic metadata) replaces the configured
//! one, for a configured domain, as in envoyproxy/ratelimit: it is applied as a fixed window
//! through [`tollgate::Limiter::hit_with`] (at most [`tollgate::MAX_INLINE_POLICIES`]
//! distinct ones; more fail with `RESOURCE_EXHAUSTED`). It has no name: it neither replaces
//! nor is replaced.
//!
//! # Cost: `hits_addend`
//!
//! The request's `hits_addend` is a plain `uint32` in the protocol, so 0 cannot be told from
//! unset: 0 means 1, as Envoy documents. A descriptor's own `hits_addend` is an optional
//! wrapper and overrides the request's when present; there 0 is a *check*: the descriptor is
//! reported (`OVER_LIMIT` if a hit of one unit would be refused now) and nothing is counted.
//! A descriptor with `is_negative_hits` gives its `hits_addend` back (see
//! [`tollgate::Limiter::refund`], at most what one hit may take) and reports `OK` with the
//! state after. A cost larger than the limit could ever allow is `OVER_LIMIT` and charges
//! nothing.
//!
//! # Statuses
//!
//! One status per descriptor, in order. `current_limit` is the configured `requests_per_unit`,
//! `unit` and `name`; `limit_remaining` is what the limit has left after this hit;
//! `duration_until_reset` is, for a descriptor within the limit, the time until its state is
//! fresh again, and for one over the limit, the time until the same hit would be allowed,
//! rounded up to whole seconds (Envoy renders `x-ratelimit-reset` from the seconds alone).
//! `overall_code` is `OVER_LIMIT` when any status is.
//!
//! **All or none.** When the answer is `OVER_LIMIT`, Envoy refuses the request, so what the
//! request's other descriptors were charged (shadow-mode ones included) is given back
//! ([`tollgate::Limiter::refund`]),
//! as a tollgate policy with several rates charges all of them or none, and as the HTTP
//! layer does. A client over its per-address limit does not also use up the global limit.
//! (envoyproxy/ratelimit counts every descriptor regardless.) The statuses report the hits
//! as they were decided, before the give-back.
//!
//! # Failure
//!
//! A store error fails the call with `UNAVAILABLE` (after trying to give back what the request
//! had charged), so that Envoy's `failure_mode_deny` decides whether the request passes. An
//! empty domain or no descriptors is `INVALID_ARGUMENT`. Nothing panics.
//!
//! # Units and strategies
//!
//! Units are `second`, `minute`, `hour`, `day`, `week` (7 days), `month` (30 days) and `year`
//! (365 days), as envoyproxy/ratelimit counts them. The default strategy is tollgate's fixed
//! window, whose window starts at the key's first hit (not at the turn of the minute on the
//! wall clock); `strategy:` chooses another.
//!
//! ```
//! use tollgate_server::envoy::EnvoyConfig;
//!
//! let config = EnvoyConfig::from_yaml(
//!     "domain: edge\ndescriptors:\n  - key: remote_address\n    rate_limit: { unit: minute, requests_per_unit: 60, strategy: sliding-window }\n",
//!     "ratelimit.yaml",
//! )?;
//! let (name, policy) = config.policies().next().expect("one policy");
//! assert_eq!(name, "envoy:edge:remote_address");
//! assert_eq!(policy.to_string(), "60/minute (sliding-window)");
//! # Ok::<(), tollgate_server::envoy::EnvoyConfigError>(())
//! ```

mod config;
mod service;

pub use config::{EnvoyConfig, EnvoyConfigError, EnvoyLimit, Unit};
pub use service::{EnvoyRateLimiter, Observer, Verdict};
