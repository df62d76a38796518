//! Descriptors and rate limits as written: each checked against its siblings, and each rate
//! limit as a whole once its mapping is read.

use std::collections::HashMap;
use std::fmt;
use std::marker::PhantomData;
use std::time::Duration;

use serde::Deserialize;
use serde::de::value::MapAccessDeserializer;
use serde::de::{self, DeserializeSeed, Deserializer, MapAccess, SeqAccess, Visitor};
use tollgate::{Policy, Rate, Strategy};

use crate::grpc::envoy::unit::Unit;
use crate::grpc::envoy::yaml::scalar::{NonEmpty, ReplacedName, StrategyName, UnitName};

/// A list of descriptors, each checked against its siblings.
#[derive(Default)]
pub(crate) struct DescriptorList(pub(crate) Vec<RawDescriptor>);

impl<'de> Deserialize<'de> for DescriptorList {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        deserializer.deserialize_seq(DescriptorListVisitor)
    }
}

struct DescriptorListVisitor;

impl<'de> Visitor<'de> for DescriptorListVisitor {
    type Value = DescriptorList;

    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("a list of descriptors")
    }

    fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<DescriptorList, A::Error> {
        let mut descriptors = Vec::new();
        let mut seen = HashMap::new();
        while let Some(descriptor) = seq.next_element_seed(DescriptorSeed {
            seen: &mut seen,
            index: descriptors.len(),
        })? {
            descriptors.push(descriptor);
        }
        Ok(DescriptorList(descriptors))
    }
}

/// One descriptor of a list, knowing the (key, value) of the siblings before it.
struct DescriptorSeed<'s> {
    seen: &'s mut HashMap<(String, Option<String>), usize>,
    index: usize,
}

impl<'de> DeserializeSeed<'de> for DescriptorSeed<'_> {
    type Value = RawDescriptor;

    fn deserialize<D: Deserializer<'de>>(self, deserializer: D) -> Result<RawDescriptor, D::Error> {
        deserializer.deserialize_map(self)
    }
}

impl<'de> Visitor<'de> for DescriptorSeed<'_> {
    type Value = RawDescriptor;

    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("a descriptor (a mapping with `key`)")
    }

    fn visit_map<A: MapAccess<'de>>(self, map: A) -> Result<RawDescriptor, A::Error> {
        let mut descriptor = RawDescriptor::deserialize(MapAccessDeserializer::new(map))?;
        // An empty value is no value, as in envoyproxy/ratelimit.
        descriptor.value = descriptor.value.filter(|value| !value.is_empty());
        let id = (descriptor.key.0.clone(), descriptor.value.clone());
        if let Some(first) = self.seen.get(&id) {
            let what = match &id.1 {
                Some(value) => format!("key {:?} with value {value:?}", id.0),
                None => format!("key {:?} with no value", id.0),
            };
            return Err(de::Error::custom(format!(
                "duplicate descriptor: {what} is already descriptor {first} of this list"
            )));
        }
        self.seen.insert(id, self.index);
        Ok(descriptor)
    }
}

/// A descriptor as written.
#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct RawDescriptor {
    pub(crate) key: NonEmpty,
    #[serde(default)]
    pub(crate) value: Option<String>,
    /// Present means a rate limit, even when empty (`rate_limit:` alone is an error, not
    /// no limit).
    #[serde(default, deserialize_with = "present")]
    pub(crate) rate_limit: Option<Checked<RawRateLimit>>,
    #[serde(default)]
    pub(crate) descriptors: DescriptorList,
    #[serde(default)]
    pub(crate) shadow_mode: bool,
    /// Accepted for envoyproxy/ratelimit's files; tollgate's metrics are per policy.
    #[serde(default, rename = "detailed_metric")]
    _detailed_metric: bool,
}

/// Reads a field that is there: unlike `Option`'s own reading, a null value is read as the
/// value (an empty mapping, for [`Checked`]), not as `None`.
fn present<'de, D: Deserializer<'de>, T: Deserialize<'de>>(
    deserializer: D,
) -> Result<Option<T>, D::Error> {
    T::deserialize(deserializer).map(Some)
}

/// A rate limit as written.
#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct RawRateLimit {
    #[serde(default)]
    unit: Option<UnitName>,
    #[serde(default)]
    requests_per_unit: Option<u32>,
    #[serde(default)]
    unlimited: bool,
    #[serde(default)]
    name: Option<NonEmpty>,
    #[serde(default)]
    replaces: Vec<RawReplace>,
    /// tollgate's extension: the strategy.
    #[serde(default)]
    strategy: Option<StrategyName>,
    /// tollgate's extension: a token bucket's size.
    #[serde(default)]
    burst: Option<u64>,
}

/// A checked rate limit.
pub(crate) struct RateLimitSpec {
    pub(crate) name: Option<String>,
    pub(crate) replaces: Vec<String>,
    pub(crate) limited: Option<Limited>,
}

/// What a rate limit that is not unlimited allows.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Limited {
    pub(crate) unit: Unit,
    pub(crate) requests_per_unit: u32,
    pub(crate) policy: Policy,
}

impl Check for RawRateLimit {
    type Checked = RateLimitSpec;

    fn check(self) -> Result<RateLimitSpec, String> {
        let name = self.name.map(|name| name.0);
        let replaces: Vec<String> = self.replaces.into_iter().map(|r| r.name.0).collect();
        if let Some(name) = &name
            && replaces.contains(name)
        {
            return Err(format!("replaces its own name {name:?}"));
        }
        let limited = if self.unlimited {
            let extra: Vec<&str> = [
                ("unit", self.unit.is_some()),
                ("requests_per_unit", self.requests_per_unit.is_some()),
                ("strategy", self.strategy.is_some()),
                ("burst", self.burst.is_some()),
            ]
            .into_iter()
            .filter_map(|(field, present)| present.then_some(field))
            .collect();
            if !extra.is_empty() {
                return Err(format!(
                    "unlimited: true takes no {}; remove {} or unlimited",
                    extra.join(" or "),
                    if extra.len() == 1 { "it" } else { "them" }
                ));
            }
            None
        } else {
            let unit = self
                .unit
                .ok_or("missing field `unit` (second, minute, hour, day, week, month or year), or write unlimited: true")?
                .0;
            let requests_per_unit = self.requests_per_unit.ok_or(
                "missing field `requests_per_unit` (write requests_per_unit: 0 to refuse every request)",
            )?;
            let rate = Rate::new(
                u64::from(requests_per_unit),
                Duration::from_secs(unit.seconds()),
            )
            .map_err(|err| err.to_string())?;
            let strategy = self.strategy.map_or(Strategy::FixedWindow, |s| s.0);
            let policy = Policy::from_parts(strategy, rate.into(), self.burst)
                .map_err(|err| err.to_string())?;
            Some(Limited {
                unit,
                requests_per_unit,
                policy,
            })
        };
        Ok(RateLimitSpec {
            name,
            replaces,
            limited,
        })
    }
}

/// An entry of `replaces`.
#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawReplace {
    name: ReplacedName,
}

/// A mapping checked as a whole once read, so that its errors point at the mapping.
pub(crate) struct Checked<T: Check>(pub(crate) T::Checked);

/// A mapping's checks that involve several of its fields.
pub(crate) trait Check {
    /// What the mapping becomes once checked.
    type Checked;

    /// Checks the mapping; the error is the message.
    fn check(self) -> Result<Self::Checked, String>;
}

impl<'de, T: Check + Deserialize<'de>> Deserialize<'de> for Checked<T> {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        deserializer.deserialize_map(CheckedVisitor(PhantomData))
    }
}

struct CheckedVisitor<T>(PhantomData<T>);

impl<'de, T: Check + Deserialize<'de>> Visitor<'de> for CheckedVisitor<T> {
    type Value = Checked<T>;

    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("a mapping")
    }

    fn visit_map<A: MapAccess<'de>>(self, map: A) -> Result<Checked<T>, A::Error> {
        let raw = T::deserialize(MapAccessDeserializer::new(map))?;
        raw.check().map(Checked).map_err(de::Error::custom)
    }
}
