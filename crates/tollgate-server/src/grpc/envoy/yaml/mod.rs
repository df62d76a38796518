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
//!
//! - `descriptor.rs`: descriptors and rate limits as written, and their checks.
//! - `scalar.rs`: the strings that are checked as they are read (names, units, strategies).

mod descriptor;
mod scalar;

use std::cell::RefCell;
use std::collections::{HashMap, HashSet};
use std::fmt;

use serde::Deserialize;
use serde::de::value::MapAccessDeserializer;
use serde::de::{self, DeserializeSeed, Deserializer, MapAccess, SeqAccess, Visitor};

use crate::config::ConfigError;
pub(crate) use descriptor::{Checked, DescriptorList, Limited, RawDescriptor};
use scalar::NonEmpty;

/// Reads every domain of the YAML `text` of `file`, checked where each value is written.
pub(crate) fn read(text: &str, file: &str) -> Result<Vec<RawDomain>, ConfigError> {
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
    pub(crate) static KNOWN_NAMES: RefCell<Option<HashSet<String>>> = const { RefCell::new(None) };
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
pub(crate) struct RawDomain {
    pub(crate) domain: NonEmpty,
    #[serde(default)]
    pub(crate) descriptors: DescriptorList,
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
