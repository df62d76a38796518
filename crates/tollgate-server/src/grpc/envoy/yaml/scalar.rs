//! Strings checked as they are read, so that their errors point at the scalar.

use std::fmt;

use serde::Deserialize;
use serde::de::{self, Deserializer, Visitor};
use tollgate::Strategy;

use crate::grpc::envoy::unit::Unit;
use crate::grpc::envoy::yaml::KNOWN_NAMES;

/// Defines a string newtype read by a visitor (so that its errors point at the scalar)
/// through `$parse`.
macro_rules! scalar {
    ($(#[$doc:meta])* $name:ident($inner:ty), $expecting:literal, $parse:expr) => {
        $(#[$doc])*
        pub(crate) struct $name(pub(crate) $inner);

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
