//! Shared by the decode tests: the variant names serde knows for an enum (so a test fails
//! when a variant is added without a strategy), the variant a value encodes as, and a lone
//! PAST node to feed decoded messages to.

use std::collections::BTreeSet;
use std::fmt;

use past_core::past::{Ed25519Signer, Keyring, MemoryStore, Past, PastConfig, PastMessage, SyncPast};
use past_core::wire::{Message, decode, encode};
use past_core::{Config, Id, Node, Time};
use proptest::prelude::*;
use proptest::strategy::{Union, ValueTree};
use serde::de::{self, Deserialize, Deserializer, Visitor};
use serde::{Serialize, forward_to_deserialize_any};

/// Every variant name of the enum `T`, in declaration order, as its `Deserialize` impl lists
/// them (the derive passes the full list to `deserialize_enum`).
pub(crate) fn variant_names<'de, T: Deserialize<'de>>() -> &'static [&'static str] {
    let mut names = None;
    let _ = T::deserialize(Names(&mut names));
    names.unwrap_or_else(|| panic!("{} is not an enum", std::any::type_name::<T>()))
}

/// The name of the variant `value` (of enum `T`) is: postcard writes the variant index first.
pub(crate) fn variant_of<T: Serialize + for<'de> Deserialize<'de>>(value: &T) -> &'static str {
    let bytes = postcard::to_allocvec(value).expect("encodes");
    let (index, _) = postcard::take_from_bytes::<u32>(&bytes).expect("a variant index");
    variant_names::<T>()[index as usize]
}

/// A lone joined PAST node with room for 1 MiB.
pub(crate) fn lone_node() -> Node<SyncPast<MemoryStore, Keyring>> {
    let key = Ed25519Signer::from_seed([3; 32]);
    let id = key.node_id();
    let mut ring = Keyring::new();
    let public = ring.add(key);
    let past = Past::new(PastConfig::new(public, 1 << 20));
    let mut node = Node::new(id, Config::with_seed(1), SyncPast::new(past, MemoryStore::new(), ring));
    node.join(None, Time::ZERO);
    node
}

/// A Pastry frame carrying PAST messages, as nodes exchange them.
pub(crate) type Frame = Message<PastMessage>;

/// Flips the given bits of `bytes` (positions wrap around its length); whatever still
/// decodes must round-trip and is handed to a [`lone_node`], which must not panic.
pub(crate) fn flip_and_handle(mut bytes: Vec<u8>, flips: Vec<(prop::sample::Index, u8)>) -> Result<(), TestCaseError> {
    for (index, bit) in flips {
        let i = index.index(bytes.len());
        bytes[i] ^= 1 << bit;
    }
    if let Ok(decoded) = decode::<Frame>(&bytes) {
        let again = encode(&decoded).expect("a decoded frame encodes");
        prop_assert_eq!(decode::<Frame>(&again).expect("re-encoded frame decodes"), decoded.clone());
        let mut node = lone_node();
        node.handle_message(Id::from_u128(5), decoded, Time::from_micros(1000));
        while node.poll_transmit().is_some() {}
        node.handle_timeout(Time::from_micros(1_000_000_000));
    }
    Ok(())
}

struct Names<'a>(&'a mut Option<&'static [&'static str]>);

#[derive(Debug)]
struct Captured;

impl fmt::Display for Captured {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("variant names captured")
    }
}

impl std::error::Error for Captured {}

impl de::Error for Captured {
    fn custom<T: fmt::Display>(_: T) -> Self {
        Captured
    }
}

impl<'de> Deserializer<'de> for Names<'_> {
    type Error = Captured;

    fn deserialize_any<V: Visitor<'de>>(self, _: V) -> Result<V::Value, Captured> {
        Err(Captured)
    }

    fn deserialize_enum<V: Visitor<'de>>(
        self,
        _name: &'static str,
        variants: &'static [&'static str],
        _: V,
    ) -> Result<V::Value, Captured> {
        *self.0 = Some(variants);
        Err(Captured)
    }

    forward_to_deserialize_any! {
        bool i8 i16 i32 i64 i128 u8 u16 u32 u64 u128 f32 f64 char str string bytes byte_buf option unit
        unit_struct newtype_struct seq tuple tuple_struct map struct identifier ignored_any
    }
}

/// One strategy per variant of an enum, named as serde names the variant.
pub(crate) type Cases<T> = Vec<(&'static str, BoxedStrategy<T>)>;

/// Any of the cases.
pub(crate) fn union<T: fmt::Debug + Clone + 'static>(cases: Cases<T>) -> BoxedStrategy<T> {
    Union::new(cases.into_iter().map(|(_, s)| s)).boxed()
}

/// The names of the cases.
pub(crate) fn names<T>(cases: Cases<T>) -> Vec<&'static str> {
    cases.into_iter().map(|(name, _)| name).collect()
}

/// Fails unless `cases` names every variant of `T` once (`names` from [`variant_names`]).
pub(crate) fn assert_covers<T>(cases: &[&'static str], names: &'static [&'static str]) {
    let covered: BTreeSet<_> = cases.iter().copied().collect();
    let all: BTreeSet<_> = names.iter().copied().collect();
    let missing: Vec<_> = all.difference(&covered).collect();
    let unknown: Vec<_> = covered.difference(&all).collect();
    assert!(
        missing.is_empty() && unknown.is_empty() && covered.len() == cases.len(),
        "{}: variants without a strategy {missing:?}, strategies for no variant {unknown:?}, or a duplicate",
        std::any::type_name::<T>()
    );
}

/// Fails unless each case's strategy builds values of the variant it is named after.
pub(crate) fn assert_cases_build_their_variant<T>(cases: Cases<T>)
where
    T: fmt::Debug + Serialize + for<'de> Deserialize<'de>,
{
    let mut runner = proptest::test_runner::TestRunner::deterministic();
    for (name, strategy) in cases {
        for _ in 0..8 {
            let value = strategy.new_tree(&mut runner).expect("a value").current();
            assert_eq!(variant_of(&value), name, "{value:?}");
        }
    }
}
