//! The typed proxy of a managed set (Python 3.14's `SetProxy`).

use crate::codec;
use crate::error::{Error, ErrorKind, Result};
use crate::handle::{boolean, count, proxy, unexpected, unit};
use crate::protocol::*;
use crate::Data;
use serde::Serialize;
use std::borrow::Borrow;
use std::collections::{BTreeSet, HashSet};
use std::hash::Hash;

proxy! {
    /// A proxy of a set held by the manager (Python's `SetProxy`).
    ///
    /// Values are stored serialised and compared by their serialised bytes, as dict keys
    /// are (for the usual types — integers, strings, tuples, enums — that is their `Eq`); they
    /// may not hold proxies ([`InvalidInput`](ErrorKind::InvalidInput)).
    ///
    /// The in-place operations ([`update`](Self::update),
    /// [`difference_update`](Self::difference_update),
    /// [`intersection_update`](Self::intersection_update),
    /// [`symmetric_difference_update`](Self::symmetric_difference_update): Python's `|=`,
    /// `-=`, `&=`, `^=`) are one request each, atomic on the server. The operations that
    /// return a new set ([`union`](Self::union), [`intersection`](Self::intersection),
    /// [`difference`](Self::difference), [`symmetric_difference`](Self::symmetric_difference):
    /// Python's `|`, `&`, `-`, `^`) return a plain local `HashSet`, as Python's return plain
    /// sets, computed from one snapshot of the managed set.
    pub struct SetProxy<T>: Kind::Set, Set(SetOp);
}

impl<T: Data> SetProxy<T> {
    fn keys<'a, Q: ?Sized + Serialize + 'a>(
        &self,
        values: impl IntoIterator<Item = &'a Q>,
    ) -> Result<Vec<Vec<u8>>> {
        values.into_iter().map(|v| self.h.key(v)).collect()
    }

    /// Adds `value`; whether it was not there yet.
    pub fn add(&self, value: T) -> Result<bool> {
        self.op(SetOp::Add(self.h.key(&value)?)).and_then(boolean)
    }

    /// Removes `value` if it is there (Python's `discard`); whether it was.
    pub fn discard<Q: ?Sized + Serialize>(&self, value: &Q) -> Result<bool>
    where
        T: Borrow<Q>,
    {
        self.op(SetOp::Discard(self.h.key(value)?)).and_then(boolean)
    }

    /// Removes `value`; [`KeyNotFound`](ErrorKind::KeyNotFound) if it is not there (Python's
    /// `remove`, which raises `KeyError`).
    pub fn remove<Q: ?Sized + Serialize>(&self, value: &Q) -> Result<()>
    where
        T: Borrow<Q>,
    {
        if self.discard(value)? {
            Ok(())
        } else {
            Err(Error::new(ErrorKind::KeyNotFound, "set.remove(x): x not in the set"))
        }
    }

    /// Whether `value` is in the set.
    pub fn contains<Q: ?Sized + Serialize>(&self, value: &Q) -> Result<bool>
    where
        T: Borrow<Q>,
    {
        self.op(SetOp::Contains(self.h.key(value)?)).and_then(boolean)
    }

    /// The number of values.
    pub fn len(&self) -> Result<usize> {
        self.op(SetOp::Len).and_then(count)
    }

    /// Whether the set is empty.
    pub fn is_empty(&self) -> Result<bool> {
        self.len().map(|n| n == 0)
    }

    /// Removes every value.
    pub fn clear(&self) -> Result<()> {
        self.op(SetOp::Clear).and_then(unit)
    }

    /// Removes and returns some value (the most recently added one);
    /// [`KeyNotFound`](ErrorKind::KeyNotFound) if the set is empty (Python's `KeyError`).
    pub fn pop(&self) -> Result<T> {
        match self.op(SetOp::Pop)? {
            Reply::Keys(ks) => match ks.first() {
                Some(k) => codec::decode_key(k),
                None => Err(Error::new(ErrorKind::Protocol, "empty pop reply")),
            },
            other => Err(unexpected(&other)),
        }
    }

    /// A snapshot of the values, in the order they were added (later changes do not show).
    pub fn to_vec(&self) -> Result<Vec<T>> {
        match self.op(SetOp::Snapshot)? {
            Reply::Keys(ks) => ks.iter().map(|k| codec::decode_key(k)).collect(),
            other => Err(unexpected(&other)),
        }
    }

    /// A snapshot of the values as a local `HashSet`.
    pub fn to_hash_set(&self) -> Result<HashSet<T>>
    where
        T: Eq + Hash,
    {
        self.to_vec().map(|v| v.into_iter().collect())
    }

    /// A snapshot of the values as a local `BTreeSet`.
    pub fn to_btree_set(&self) -> Result<BTreeSet<T>>
    where
        T: Ord,
    {
        self.to_vec().map(|v| v.into_iter().collect())
    }

    /// Adds every value (Python's `update` / `|=`), in one request.
    pub fn update(&self, values: impl IntoIterator<Item = T>) -> Result<()> {
        let values: Vec<T> = values.into_iter().collect();
        self.op(SetOp::Update(self.keys(&values)?)).and_then(unit)
    }

    /// Removes every value in `values` (Python's `difference_update` / `-=`), atomically.
    pub fn difference_update<'a>(&self, values: impl IntoIterator<Item = &'a T>) -> Result<()>
    where
        T: 'a,
    {
        self.op(SetOp::DifferenceUpdate(self.keys(values)?)).and_then(unit)
    }

    /// Keeps only the values also in `values` (Python's `intersection_update` / `&=`),
    /// atomically.
    pub fn intersection_update<'a>(&self, values: impl IntoIterator<Item = &'a T>) -> Result<()>
    where
        T: 'a,
    {
        self.op(SetOp::IntersectionUpdate(self.keys(values)?)).and_then(unit)
    }

    /// Adds the values of `values` that are absent and removes those that are present
    /// (Python's `symmetric_difference_update` / `^=`), atomically.
    pub fn symmetric_difference_update<'a>(
        &self,
        values: impl IntoIterator<Item = &'a T>,
    ) -> Result<()>
    where
        T: 'a,
    {
        self.op(SetOp::SymmetricDifferenceUpdate(self.keys(values)?)).and_then(unit)
    }

    /// The values in the set or in `other` (Python's `|`), as a local set.
    pub fn union(&self, other: impl IntoIterator<Item = T>) -> Result<HashSet<T>>
    where
        T: Eq + Hash,
    {
        let mut s = self.to_hash_set()?;
        s.extend(other);
        Ok(s)
    }

    /// The values in both the set and `other` (Python's `&`), as a local set.
    pub fn intersection(&self, other: impl IntoIterator<Item = T>) -> Result<HashSet<T>>
    where
        T: Eq + Hash,
    {
        let mine = self.to_hash_set()?;
        Ok(other.into_iter().filter(|v| mine.contains(v)).collect())
    }

    /// The values in the set but not in `other` (Python's `-`), as a local set.
    pub fn difference(&self, other: impl IntoIterator<Item = T>) -> Result<HashSet<T>>
    where
        T: Eq + Hash,
    {
        let mut s = self.to_hash_set()?;
        for v in other {
            s.remove(&v);
        }
        Ok(s)
    }

    /// The values in exactly one of the set and `other` (Python's `^`), as a local set.
    pub fn symmetric_difference(&self, other: impl IntoIterator<Item = T>) -> Result<HashSet<T>>
    where
        T: Eq + Hash,
    {
        let mut s = self.to_hash_set()?;
        let other: HashSet<T> = other.into_iter().collect();
        for v in other {
            if !s.remove(&v) {
                s.insert(v);
            }
        }
        Ok(s)
    }

    /// Whether every value of the set is in `other` (Python's `<=`).
    pub fn is_subset(&self, other: &HashSet<T>) -> Result<bool>
    where
        T: Eq + Hash,
    {
        Ok(self.to_vec()?.iter().all(|v| other.contains(v)))
    }

    /// Whether every value of `other` is in the set (Python's `>=`).
    pub fn is_superset(&self, other: &HashSet<T>) -> Result<bool>
    where
        T: Eq + Hash,
    {
        Ok(self.to_hash_set()?.is_superset(other))
    }

    /// Whether the set and `other` have no value in common.
    pub fn is_disjoint(&self, other: &HashSet<T>) -> Result<bool>
    where
        T: Eq + Hash,
    {
        Ok(self.to_vec()?.iter().all(|v| !other.contains(v)))
    }
}
