//! [`Matched`]: the limit a request's descriptor is held to, after `replaces`, and the key
//! its hits count under.

use std::cell::OnceCell;
use std::collections::HashSet;

use envoy_types::pb::envoy::extensions::common::ratelimit::v3::RateLimitDescriptor;
use envoy_types::pb::envoy::service::ratelimit::v3::rate_limit_response::RateLimit;
use tollgate::{Key, KeyBytes, PolicyHandle, Store};

use crate::grpc::envoy::tree::{EnvoyLimit, encode_into};
use crate::grpc::envoy::unit::Unit;

/// The limit a descriptor is held to.
pub(super) enum Matched<'a, S: Store> {
    /// No limit: not configured, or replaced.
    None,
    /// A rate limit of the configuration, with its handle (`None` when unlimited).
    Configured {
        limit: &'a EnvoyLimit,
        handle: Option<&'a PolicyHandle<S>>,
    },
    /// A limit sent with the descriptor, applied as an inline policy.
    Supplied {
        handle: PolicyHandle<S>,
        unit: Unit,
        requests_per_unit: u32,
    },
}

impl<S: Store> Matched<'_, S> {
    /// The policy name, for observers.
    pub(super) fn policy_name(&self) -> &str {
        match self {
            Matched::None => "",
            Matched::Configured { limit, .. } => limit.policy_name(),
            Matched::Supplied { handle, .. } => handle.name(),
        }
    }

    /// Where hits go, unless there is no limit or it is unlimited.
    pub(super) fn handle(&self) -> Option<&PolicyHandle<S>> {
        match self {
            Matched::None => None,
            Matched::Configured { handle, .. } => *handle,
            Matched::Supplied { handle, .. } => Some(handle),
        }
    }

    pub(super) fn is_unlimited(&self) -> bool {
        matches!(self, Matched::Configured { limit, .. } if limit.is_unlimited())
    }

    pub(super) fn shadow_mode(&self) -> bool {
        matches!(self, Matched::Configured { limit, .. } if limit.shadow_mode())
    }

    /// The `current_limit` a status reports.
    pub(super) fn current_limit(&self) -> Option<RateLimit> {
        match self {
            Matched::None => None,
            Matched::Configured { limit, .. } => Some(RateLimit {
                name: limit.name().unwrap_or_default().to_owned(),
                requests_per_unit: limit.requests_per_unit().unwrap_or_default(),
                unit: limit.unit().map_or(0, Unit::proto),
            }),
            Matched::Supplied {
                unit,
                requests_per_unit,
                ..
            } => Some(RateLimit {
                name: String::new(),
                requests_per_unit: *requests_per_unit,
                unit: unit.proto(),
            }),
        }
    }
}

/// Removes the limits that other matched limits replace (by `name`); a replaced limit's
/// descriptor is then reported as having no limit.
pub(super) fn apply_replaces<S: Store>(matched: &mut [Matched<'_, S>]) {
    let replaced: HashSet<&str> = matched
        .iter()
        .filter_map(|m| match m {
            Matched::Configured { limit, .. } => Some(limit.replaces()),
            _ => None,
        })
        .flatten()
        .map(String::as_str)
        .collect();
    if replaced.is_empty() {
        return;
    }
    for m in matched.iter_mut() {
        if let Matched::Configured { limit, .. } = m
            && limit.name().is_some_and(|n| replaced.contains(n))
        {
            *m = Matched::None;
        }
    }
}

/// A descriptor's [`hit_key`] as a [`Key`], written only when read (observers read it of
/// denials only).
pub(super) struct DescriptorKey<'a> {
    descriptor: &'a RateLimitDescriptor,
    text: OnceCell<String>,
}

impl<'a> DescriptorKey<'a> {
    pub(super) fn new(descriptor: &'a RateLimitDescriptor) -> Self {
        Self {
            descriptor,
            text: OnceCell::new(),
        }
    }
}

impl Key for DescriptorKey<'_> {
    fn key_bytes(&self) -> KeyBytes<'_> {
        KeyBytes::borrowed(
            self.text
                .get_or_init(|| hit_key(self.descriptor))
                .as_bytes(),
        )
    }
}

/// The key of a descriptor's hit: its entries, `key=value` joined by `/` (percent-encoded
/// as policy names are), so that every distinct value counts apart.
pub(super) fn hit_key(descriptor: &RateLimitDescriptor) -> String {
    let mut key = String::new();
    for (i, entry) in descriptor.entries.iter().enumerate() {
        if i > 0 {
            key.push('/');
        }
        encode_into(&mut key, &entry.key);
        key.push('=');
        encode_into(&mut key, &entry.value);
    }
    key
}
