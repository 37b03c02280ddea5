//! Serde helpers for config types that parse from a string.

use std::fmt;
use std::marker::PhantomData;
use std::str::FromStr;

use serde::Deserializer;
use serde::de::{Error, Visitor};

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
