//! Reading the descriptor configuration's YAML: every value checked where it is written, so
//! that each error names its line and field.
//!
//! # How errors find their line
//!
//! serde_yaml_ng marks an error raised inside a visitor with the position and path of the
//! value being visited. So every check runs *inside* the visitor of the value it is about: a
//! unit is checked while its scalar is read, a rate limit once its mapping is read (through
//! [`Checked`]), a duplicate descriptor while the list element is read (through a seed that
//! knows its siblings), a duplicate domain while its document is read. The one check that
//! needs the whole domain, that every `replaces` names a rate limit, reads the file a second
//! time when it fails, with the names known, so that the error points at the bad entry.

use std::cell::RefCell;
use std::collections::{HashMap, HashSet};
use std::fmt;
use std::marker::PhantomData;
use std::time::Duration;

use serde::Deserialize;
use serde::de::value::MapAccessDeserializer;
use serde::de::{self, DeserializeSeed, Deserializer, MapAccess, SeqAccess, Visitor};
use tollgate::{Policy, Rate, Strategy};

use crate::config::ConfigError;
use crate::grpc::envoy::unit::Unit;

/// Reads every domain of the YAML `text` of `file`, checked where each value is written.
pub(super) fn read(text: &str, file: &str) -> Result<Vec<RawDomain>, ConfigError> {
    let domains = match read_file(text, None) {
        Ok(domains) => domains,
        Err(err) => return Err(ConfigError::from_yaml(file, &err)),
    };
    let names: Vec<HashSet<String>> = domains.iter().map(RawDomain::limit_names).collect();
    let unresolved = domains
        .iter()
        .zip(&names)
        .find_map(|(domain, names)| domain.unresolved_replace(names));
    if domains.is_empty() {
        return Err(ConfigError {
            file: file.to_owned(),
            line: None,
            field: None,
            message: "no domain; expected `domain:` and `descriptors:`".to_owned(),
        });
    }
    if let Some((field, name, domain)) = unresolved {
        // Read again with the names known, so that the error points at the entry.
        return Err(match read_file(text, Some(&names)) {
            Err(err) => ConfigError::from_yaml(file, &err),
            Ok(_) => ConfigError {
                file: file.to_owned(),
                line: None,
                field: Some(field),
                message: unknown_replace_message(&name, &domain),
            },
        });
    }
    Ok(domains)
}

impl ConfigError {
    /// Splits serde_yaml_ng's `path: message at line L column C` into its parts.
    fn from_yaml(file: &str, err: &serde_yaml_ng::Error) -> Self {
        let mut text = err.to_string();
        let location = err.location();
        if let Some(location) = &location {
            let suffix = format!(" at line {} column {}", location.line(), location.column());
            if text.ends_with(&suffix) {
                text.truncate(text.len() - suffix.len());
            }
        }
        let (field, message) = match text.split_once(": ") {
            // A list at the top reads `.[1].descriptors`; the dot says nothing.
            Some((path, message)) if is_yaml_path(path) => {
                let path = path.strip_prefix('.').unwrap_or(path);
                (Some(path.to_owned()), message)
            }
            _ => (None, text.as_str()),
        };
        Self {
            file: file.to_owned(),
            line: location.map(|location| location.line()),
            field,
            message: message.to_owned(),
        }
    }
}

/// Whether `s` looks like a path serde_yaml_ng writes (`descriptors[0].rate_limit`), rather
/// than the start of a message.
fn is_yaml_path(s: &str) -> bool {
    !s.is_empty()
        && s.chars()
            .all(|c| c.is_ascii_alphanumeric() || matches!(c, '_' | '-' | '.' | '[' | ']' | '?'))
}

/// Reads every domain of a file. With `known_names` (the rate limit names of each domain, in
/// order), a `replaces` naming none of its domain's is an error where it is written.
fn read_file(
    text: &str,
    known_names: Option<&[HashSet<String>]>,
) -> Result<Vec<RawDomain>, serde_yaml_ng::Error> {
    let mut reader = FileReader {
        domains: Vec::new(),
        seen: HashMap::new(),
        known_names,
    };
    let result = (|| {
        for document in serde_yaml_ng::Deserializer::from_str(text) {
            DocumentSeed(&mut reader).deserialize(document)?;
        }
        Ok(())
    })();
    KNOWN_NAMES.with(|names| names.borrow_mut().take());
    result.map(|()| reader.domains)
}

thread_local! {
    /// While a file is read a second time, the rate limit names of the domain being read:
    /// a `replaces` entry checks its name against them. Reading is synchronous, so the
    /// domain being read and the entries being checked are on this thread.
    static KNOWN_NAMES: RefCell<Option<HashSet<String>>> = const { RefCell::new(None) };
}

/// What reading a file has found so far.
struct FileReader<'a> {
    domains: Vec<RawDomain>,
    /// Domains read, with where they were (for the duplicate's message).
    seen: HashMap<String, usize>,
    known_names: Option<&'a [HashSet<String>]>,
}

/// One YAML document: a domain, a list of domains, or nothing.
struct DocumentSeed<'r, 'a>(&'r mut FileReader<'a>);

impl<'de> DeserializeSeed<'de> for DocumentSeed<'_, '_> {
    type Value = ();

    fn deserialize<D: Deserializer<'de>>(self, deserializer: D) -> Result<(), D::Error> {
        deserializer.deserialize_any(self)
    }
}

impl<'de> Visitor<'de> for DocumentSeed<'_, '_> {
    type Value = ();

    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("a domain (a mapping with `domain` and `descriptors`) or a list of domains")
    }

    fn visit_map<A: MapAccess<'de>>(self, map: A) -> Result<(), A::Error> {
        DomainSeed(self.0).visit_map(map)
    }

    fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<(), A::Error> {
        while seq.next_element_seed(DomainSeed(&mut *self.0))?.is_some() {}
        Ok(())
    }

    fn visit_unit<E: de::Error>(self) -> Result<(), E> {
        Ok(()) // an empty document
    }

    fn visit_none<E: de::Error>(self) -> Result<(), E> {
        Ok(())
    }
}

/// One domain, checked against the domains read before it.
struct DomainSeed<'r, 'a>(&'r mut FileReader<'a>);

impl<'de> DeserializeSeed<'de> for DomainSeed<'_, '_> {
    type Value = ();

    fn deserialize<D: Deserializer<'de>>(self, deserializer: D) -> Result<(), D::Error> {
        deserializer.deserialize_map(self)
    }
}

impl<'de> Visitor<'de> for DomainSeed<'_, '_> {
    type Value = ();

    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("a domain (a mapping with `domain` and `descriptors`)")
    }

    fn visit_map<A: MapAccess<'de>>(self, map: A) -> Result<(), A::Error> {
        let reader = self.0;
        let ordinal = reader.domains.len();
        if let Some(known) = reader.known_names {
            let names = known.get(ordinal).cloned().unwrap_or_default();
            KNOWN_NAMES.with(|cell| *cell.borrow_mut() = Some(names));
        }
        let domain = RawDomain::deserialize(MapAccessDeserializer::new(map))?;
        if let Some(first) = reader.seen.get(&domain.domain.0) {
            return Err(de::Error::custom(format!(
                "duplicate domain {:?}: domain number {} of this file has the same name",
                domain.domain.0,
                first + 1
            )));
        }
        reader.seen.insert(domain.domain.0.clone(), ordinal);
        reader.domains.push(domain);
        Ok(())
    }
}

/// A domain as written.
#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct RawDomain {
    pub(super) domain: NonEmpty,
    #[serde(default)]
    pub(super) descriptors: DescriptorList,
}

impl RawDomain {
    /// The names of the domain's rate limits.
    fn limit_names(&self) -> HashSet<String> {
        let mut names = HashSet::new();
        collect_names(&self.descriptors.0, &mut names);
        names
    }

    /// The first `replaces` naming no rate limit of the domain: its field, the name and the
    /// domain.
    fn unresolved_replace(&self, names: &HashSet<String>) -> Option<(String, String, String)> {
        find_unresolved(&self.descriptors.0, names, "").map(|(field, name)| {
            let domain = self.domain.0.clone();
            (field, name, domain)
        })
    }
}

fn collect_names(descriptors: &[RawDescriptor], names: &mut HashSet<String>) {
    for descriptor in descriptors {
        if let Some(name) = descriptor
            .rate_limit
            .as_ref()
            .and_then(|c| c.0.name.clone())
        {
            names.insert(name);
        }
        collect_names(&descriptor.descriptors.0, names);
    }
}

fn find_unresolved(
    descriptors: &[RawDescriptor],
    names: &HashSet<String>,
    field: &str,
) -> Option<(String, String)> {
    descriptors
        .iter()
        .enumerate()
        .find_map(|(index, descriptor)| {
            let field = if field.is_empty() {
                format!("descriptors[{index}]")
            } else {
                format!("{field}.descriptors[{index}]")
            };
            let replaces = descriptor
                .rate_limit
                .as_ref()
                .map_or(&[][..], |c| &c.0.replaces[..]);
            replaces
                .iter()
                .enumerate()
                .find(|(_, name)| !names.contains(*name))
                .map(|(i, name)| {
                    (
                        format!("{field}.rate_limit.replaces[{i}].name"),
                        name.clone(),
                    )
                })
                .or_else(|| find_unresolved(&descriptor.descriptors.0, names, &field))
        })
}

fn unknown_replace_message(name: &str, domain: &str) -> String {
    format!("no rate limit is named {name:?} in domain {domain:?}")
}

/// A list of descriptors, each checked against its siblings.
#[derive(Default)]
pub(super) struct DescriptorList(pub(super) Vec<RawDescriptor>);

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
pub(super) struct RawDescriptor {
    pub(super) key: NonEmpty,
    #[serde(default)]
    pub(super) value: Option<String>,
    /// Present means a rate limit, even when empty (`rate_limit:` alone is an error, not
    /// no limit).
    #[serde(default, deserialize_with = "present")]
    pub(super) rate_limit: Option<Checked<RawRateLimit>>,
    #[serde(default)]
    pub(super) descriptors: DescriptorList,
    #[serde(default)]
    pub(super) shadow_mode: bool,
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
pub(super) struct RawRateLimit {
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
pub(super) struct RateLimitSpec {
    pub(super) name: Option<String>,
    pub(super) replaces: Vec<String>,
    pub(super) limited: Option<Limited>,
}

/// What a rate limit that is not unlimited allows.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(super) struct Limited {
    pub(super) unit: Unit,
    pub(super) requests_per_unit: u32,
    pub(super) policy: Policy,
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
            let mut policy = Policy::new(strategy, rate.into());
            if let Some(burst) = self.burst {
                policy = policy.with_burst(burst).map_err(|err| err.to_string())?;
            }
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
pub(super) struct Checked<T: Check>(pub(super) T::Checked);

/// A mapping's checks that involve several of its fields.
pub(super) trait Check {
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

/// Defines a string newtype read by a visitor (so that its errors point at the scalar)
/// through `$parse`.
macro_rules! scalar {
    ($(#[$doc:meta])* $name:ident($inner:ty), $expecting:literal, $parse:expr) => {
        $(#[$doc])*
        pub(super) struct $name(pub(super) $inner);

        impl<'de> Deserialize<'de> for $name {
            fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
                struct ScalarVisitor;

                impl Visitor<'_> for ScalarVisitor {
                    type Value = $name;

                    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                        f.write_str($expecting)
                    }

                    fn visit_str<E: de::Error>(self, s: &str) -> Result<$name, E> {
                        let parse: fn(&str) -> Result<$inner, String> = $parse;
                        parse(s).map($name).map_err(E::custom)
                    }
                }

                deserializer.deserialize_str(ScalarVisitor)
            }
        }
    };
}

scalar!(
    /// A string that must not be empty.
    NonEmpty(String),
    "a non-empty string",
    |s| {
        if s.is_empty() {
            Err("must not be empty".to_owned())
        } else {
            Ok(s.to_owned())
        }
    }
);

scalar!(
    /// A unit's name.
    UnitName(Unit),
    "a unit (second, minute, hour, day, week, month or year)",
    |s| {
        Unit::from_name(s).ok_or_else(|| {
            format!("unknown unit {s:?}; expected second, minute, hour, day, week, month or year")
        })
    }
);

scalar!(
    /// A strategy's name.
    StrategyName(Strategy),
    "a strategy (fixed-window, sliding-window, sliding-window-counter or token-bucket)",
    |s| s.parse::<Strategy>().map_err(|err| err.to_string())
);

scalar!(
    /// The name in a `replaces` entry: checked against the domain's rate limit names when the
    /// file is read a second time for that purpose.
    ReplacedName(String),
    "the name of a rate limit",
    |s| {
        if s.is_empty() {
            return Err("must not be empty".to_owned());
        }
        KNOWN_NAMES.with(|names| match &*names.borrow() {
            Some(names) if !names.contains(s) => Err(format!(
                "no rate limit of this domain is named {s:?}; replaces must name a rate limit's `name`"
            )),
            _ => Ok(s.to_owned()),
        })
    }
);
