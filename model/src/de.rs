//! Serde helpers for config types that parse from a string.

use std::fmt;
use std::marker::PhantomData;
use std::str::FromStr;

use serde::de::{Error, Visitor};
use serde::{Deserialize, Deserializer};

/// Deserialises any [`FromStr`] type from a string.
///
/// The parse runs inside the visitor, so a YAML deserialiser reports the error
/// at the scalar's own line and column rather than at the enclosing mapping.
pub fn from_str<'de, D, T>(deserializer: D) -> Result<T, D::Error>
where
    D: Deserializer<'de>,
    T: FromStr,
    T::Err: fmt::Display,
{
    struct StrVisitor<T>(PhantomData<T>);

    impl<T> Visitor<'_> for StrVisitor<T>
    where
        T: FromStr,
        T::Err: fmt::Display,
    {
        type Value = T;

        fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
            f.write_str("a string")
        }

        fn visit_str<E: Error>(self, text: &str) -> Result<T, E> {
            text.parse().map_err(E::custom)
        }
    }

    deserializer.deserialize_str(StrVisitor(PhantomData))
}

/// Deserialises a list, rejecting an element whose `key` repeats an earlier one's.
/// YAML `null` reads as an empty list.
///
/// The check runs while the list is read, so the error carries the list's position.
/// `what` names an element in the message (`group "a" is defined more than once`).
pub fn unique_by<'de, D, T>(
    deserializer: D,
    key: fn(&T) -> &str,
    what: &'static str,
) -> Result<Vec<T>, D::Error>
where
    D: Deserializer<'de>,
    T: Deserialize<'de>,
{
    struct UniqueVisitor<T> {
        key: fn(&T) -> &str,
        what: &'static str,
    }

    impl<'de, T: Deserialize<'de>> Visitor<'de> for UniqueVisitor<T> {
        type Value = Vec<T>;

        fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
            write!(f, "a list of {}s", self.what)
        }

        fn visit_none<E: Error>(self) -> Result<Self::Value, E> {
            Ok(Vec::new())
        }

        fn visit_unit<E: Error>(self) -> Result<Self::Value, E> {
            Ok(Vec::new())
        }

        fn visit_some<D2: Deserializer<'de>>(self, inner: D2) -> Result<Self::Value, D2::Error> {
            inner.deserialize_seq(self)
        }

        fn visit_seq<A: serde::de::SeqAccess<'de>>(
            self,
            mut seq: A,
        ) -> Result<Self::Value, A::Error> {
            let mut items: Vec<T> = Vec::new();
            while let Some(item) = seq.next_element::<T>()? {
                let name = (self.key)(&item);
                if items.iter().any(|seen| (self.key)(seen) == name) {
                    return Err(A::Error::custom(format!(
                        "{} {name:?} is defined more than once",
                        self.what
                    )));
                }
                items.push(item);
            }
            Ok(items)
        }
    }

    deserializer.deserialize_option(UniqueVisitor { key, what })
}

/// Deserialises a value that may be written as YAML `null` (a key with nothing
/// after it, as in Prometheus's sample `rule_files:`) to its default.
pub fn null_as_default<'de, D, T>(deserializer: D) -> Result<T, D::Error>
where
    D: Deserializer<'de>,
    T: Default + Deserialize<'de>,
{
    Ok(Option::<T>::deserialize(deserializer)?.unwrap_or_default())
}
