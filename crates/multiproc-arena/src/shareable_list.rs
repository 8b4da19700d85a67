//! [`ShareableList`]: Python's `multiprocessing.shared_memory.ShareableList`.
//!
//! # Layout
//!
//! One [`SharedMemory`] block of 64-bit words, all accessed atomically
//! ([`SharedMemory::words`]):
//!
//! ```text
//! word 0        MAGIC ("MPSHLIST"), written last by the creator
//! word 1        VERSION
//! word 2        count (number of items)
//! word 3        data words (size of the data area, in words)
//! per item      2 words: [data offset in words (low 32) | capacity in bytes (high 32)]  (fixed)
//!                        [kind code (low 8) | length in bytes (high 32)]               (changes)
//! data area     each item's capacity, contiguous, in item order
//! ```
//!
//! Opening checks all of it — magic, version, that the table and the data area fit in the
//! block, that the offsets are contiguous and every capacity a positive multiple of 8 — and
//! keeps its own copy of the offsets and capacities, so a block garbled later can never make a
//! reader go out of bounds: at worst an item reads as [`ListErrorKind::InvalidData`].

use crate::error::{Error, ErrorKind};
use crate::segment::random_name;
use crate::shared_memory::SharedMemory;
use std::fmt;
use std::sync::atomic::Ordering;

crate::error_type! {
    /// The error of a [`ShareableList`] item access.
    pub struct ListError {}

    /// What went wrong, without the details; see [`ListError::kind`].
    pub enum ListErrorKind {
        /// The index is outside the list (Python's `IndexError`).
        IndexOutOfRange => "list index out of range",
        /// The new value is longer than the slot's storage (Python's `ValueError`
        /// "exceeds available storage"); nothing was written.
        TooLarge => "value exceeds available storage for the slot",
        /// [`ShareableList::index`] found no such item (Python's `ValueError`).
        NotInList => "item is not in the list",
        /// The slot holds no valid item: another process was writing it at that moment (a
        /// torn string), or the block was garbled.
        InvalidData => "the slot holds no valid item (a torn or garbled write)",
    }

    io {
        IndexOutOfRange => InvalidInput,
        TooLarge => InvalidInput,
        NotInList => NotFound,
        InvalidData => InvalidData,
    }
}

const MAGIC: u64 = u64::from_le_bytes(*b"MPSHLIST");
const VERSION: u64 = 1;
const HEADER_WORDS: usize = 4;
const SLOT_WORDS: usize = 2;
/// Every slot has room for at least one word, so any number fits anywhere (as in Python).
const MIN_CAP: usize = 8;

/// One item of a [`ShareableList`]: the types Python's `ShareableList` holds.
#[derive(Debug, Clone, PartialEq)]
pub enum Item {
    /// `int` (64-bit, as Python's `q`).
    Int(i64),
    /// `float`.
    Float(f64),
    /// `bool`.
    Bool(bool),
    /// `str` (UTF-8).
    Str(String),
    /// `bytes`.
    Bytes(Vec<u8>),
    /// `None`.
    None,
}

/// The type of an [`Item`], without the value.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum ItemKind {
    /// [`Item::None`].
    None = 0,
    /// [`Item::Int`].
    Int = 1,
    /// [`Item::Float`].
    Float = 2,
    /// [`Item::Bool`].
    Bool = 3,
    /// [`Item::Str`].
    Str = 4,
    /// [`Item::Bytes`].
    Bytes = 5,
}

impl ItemKind {
    fn from_code(c: u64) -> Option<ItemKind> {
        use ItemKind::*;
        Some(match c {
            0 => None,
            1 => Int,
            2 => Float,
            3 => Bool,
            4 => Str,
            5 => Bytes,
            _ => return Option::None,
        })
    }

    /// Python's `struct` code for a slot of this kind and `cap` bytes (`q`, `d`, `8s`, …).
    fn format(self, cap: usize) -> String {
        match self {
            ItemKind::Int => "q".into(),
            ItemKind::Float => "d".into(),
            ItemKind::Bool => "xxxxxxx?".into(),
            ItemKind::None => "xxxxxx?x".into(),
            ItemKind::Str | ItemKind::Bytes => format!("{cap}s"),
        }
    }
}

impl Item {
    /// The item's type.
    pub fn kind(&self) -> ItemKind {
        match self {
            Item::Int(_) => ItemKind::Int,
            Item::Float(_) => ItemKind::Float,
            Item::Bool(_) => ItemKind::Bool,
            Item::Str(_) => ItemKind::Str,
            Item::Bytes(_) => ItemKind::Bytes,
            Item::None => ItemKind::None,
        }
    }

    /// The bytes it takes in its slot.
    fn payload(&self) -> Vec<u8> {
        match self {
            Item::Int(v) => v.to_le_bytes().to_vec(),
            Item::Float(v) => v.to_bits().to_le_bytes().to_vec(),
            Item::Bool(v) => u64::from(*v).to_le_bytes().to_vec(),
            Item::Str(s) => s.as_bytes().to_vec(),
            Item::Bytes(b) => b.clone(),
            Item::None => Vec::new(),
        }
    }

    /// The storage Python allocates for it: 8 bytes for a number, bool or None; the encoded
    /// length rounded up to a multiple of 8 for str and bytes (at least 8 here).
    fn capacity(&self) -> usize {
        let n = match self {
            Item::Str(s) => s.len(),
            Item::Bytes(b) => b.len(),
            _ => 8,
        };
        n.div_ceil(8).max(MIN_CAP / 8) * 8
    }
}

macro_rules! item_from {
    ($($t:ty => |$v:ident| $e:expr),* $(,)?) => {$(
        impl From<$t> for Item {
            fn from($v: $t) -> Item {
                $e
            }
        }
    )*};
}

item_from!(
    i64 => |v| Item::Int(v), i32 => |v| Item::Int(v.into()), f64 => |v| Item::Float(v),
    bool => |v| Item::Bool(v), &str => |v| Item::Str(v.into()), String => |v| Item::Str(v),
    &[u8] => |v| Item::Bytes(v.into()), Vec<u8> => |v| Item::Bytes(v), () => |_v| Item::None,
);

/// Where an item's storage lies (copied from the header when opening, never re-read).
#[derive(Debug, Clone, Copy)]
struct Slot {
    /// The slot's `[offset | capacity]` and `[kind | length]` words.
    table: usize,
    /// First data word.
    data: usize,
    /// Capacity in bytes (a multiple of 8).
    cap: usize,
}

/// A fixed-length list of ints, floats, bools, strings, bytes and `None` in a named
/// shared-memory block, which another process opens by name (Python's
/// `multiprocessing.shared_memory.ShareableList`).
///
/// As in Python, the length is fixed and each slot keeps the storage it was created with: a
/// number, bool or `None` takes 8 bytes, a string or bytes its length rounded up to a multiple
/// of 8. [`set`](Self::set) may change an item's type, but a value longer than the slot is
/// refused ([`ListErrorKind::TooLarge`]) and nothing is written. Indices may be negative
/// (from the end).
///
/// **No locking**, as in Python: readers and writers in several processes may race. Every
/// access is atomic per 64-bit word, so there is no undefined behaviour and a number is never
/// torn; a string or bytes value being rewritten may be read half old, half new (or as
/// [`ListErrorKind::InvalidData`] if the mix is not UTF-8). Use a lock around the list when
/// that matters.
///
/// The creator's handle removes the name when dropped, unless [`persist`](Self::persist)ed;
/// [`unlink`](Self::unlink) removes it at once (processes that have it open keep using it).
///
/// ```
/// use multiproc_arena::{Item, ShareableList};
/// let items = [Item::from("howdy"), Item::from(&b"HoWdY"[..]), Item::from(-273.154),
///              Item::from(100), Item::None, Item::from(true), Item::from(42)];
/// let sl = ShareableList::create(None, &items).unwrap();
/// assert_eq!(sl.format(), "8s8sdqxxxxxx?xxxxxxxx?q");
/// let other = ShareableList::open(sl.name()).unwrap(); // in any process of the user
/// other.set(3, 42).unwrap();
/// assert_eq!(sl.get(-4).unwrap(), Item::Int(42));
/// assert_eq!(sl.count(&Item::Int(42)), 2);
/// assert!(sl.set(0, "far too many").is_err()); // 12 bytes in an 8-byte slot
/// assert_eq!(sl.get(0).unwrap(), Item::from("howdy"));
/// ```
pub struct ShareableList {
    shm: SharedMemory,
    slots: Vec<Slot>,
}

fn bad(kind: ErrorKind, name: &str, what: &str) -> Error {
    Error::new(kind, format!("{name}: not a valid ShareableList ({what})"))
}

impl ShareableList {
    /// Creates a list holding `items` under `name` (a fresh random name if `None`), mode 0600.
    /// `AlreadyExists` if the name is taken, `InvalidLayout` if the items need more than the
    /// layout can describe.
    pub fn create(name: Option<&str>, items: &[Item]) -> crate::error::Result<ShareableList> {
        let too_big = || Error::new(ErrorKind::InvalidLayout, "ShareableList too large");
        let table = SLOT_WORDS.checked_mul(items.len()).ok_or_else(too_big)? + HEADER_WORDS;
        let mut slots = Vec::with_capacity(items.len());
        let mut data_words = 0usize;
        for (i, item) in items.iter().enumerate() {
            let cap = item.capacity();
            if cap > u32::MAX as usize || data_words > u32::MAX as usize {
                return Err(too_big());
            }
            slots.push(Slot {
                table: HEADER_WORDS + SLOT_WORDS * i,
                data: table + data_words,
                cap,
            });
            data_words = data_words.checked_add(cap / 8).ok_or_else(too_big)?;
        }
        let bytes = table.checked_add(data_words).and_then(|w| w.checked_mul(8));
        let bytes = bytes.ok_or_else(too_big)?;
        let shm = match name {
            Some(n) => SharedMemory::create_named(n, bytes)?,
            None => SharedMemory::create_named(&random_name(), bytes)?,
        };
        let list = ShareableList { shm, slots };
        let w = list.shm.words();
        w[1].store(VERSION, Ordering::Relaxed);
        w[2].store(items.len() as u64, Ordering::Relaxed);
        w[3].store(data_words as u64, Ordering::Relaxed);
        for (slot, item) in list.slots.iter().zip(items) {
            let fixed = (slot.data - table) as u64 | (slot.cap as u64) << 32;
            w[slot.table].store(fixed, Ordering::Relaxed);
            list.write(slot, item);
        }
        // Published last: an opener that sees the magic sees everything above.
        w[0].store(MAGIC, Ordering::Release);
        Ok(list)
    }

    /// Opens the list another process created under `name`. `NotFound` if there is none;
    /// `NotInitialized` while its creator is still writing it; `InvalidHeader`,
    /// `VersionMismatch` or `Truncated` if the block is not a well-formed list.
    pub fn open(name: &str) -> crate::error::Result<ShareableList> {
        Self::attach(SharedMemory::open(name)?)
    }

    fn attach(shm: SharedMemory) -> crate::error::Result<ShareableList> {
        let name = shm.name().to_string();
        let w = shm.words();
        let word = |i: usize| w.get(i).map(|x| x.load(Ordering::Acquire));
        let magic = word(0).ok_or_else(|| bad(ErrorKind::Truncated, &name, "no header"))?;
        if magic == 0 {
            return Err(Error::new(ErrorKind::NotInitialized, format!("{name}: being created")));
        }
        if magic != MAGIC {
            return Err(bad(ErrorKind::InvalidHeader, &name, "bad magic"));
        }
        let version = word(1).ok_or_else(|| bad(ErrorKind::Truncated, &name, "no header"))?;
        if version != VERSION {
            return Err(bad(ErrorKind::VersionMismatch, &name, &format!("version {version}")));
        }
        let (count, data_words) = match (word(2), word(3)) {
            (Some(c), Some(d)) => (c, d),
            _ => return Err(bad(ErrorKind::Truncated, &name, "no header")),
        };
        let table = usize::try_from(count)
            .ok()
            .and_then(|c| c.checked_mul(SLOT_WORDS))
            .and_then(|t| t.checked_add(HEADER_WORDS))
            .ok_or_else(|| bad(ErrorKind::InvalidHeader, &name, "count"))?;
        let end = usize::try_from(data_words).ok().and_then(|d| d.checked_add(table));
        match end {
            Some(end) if end <= w.len() => {}
            _ => return Err(bad(ErrorKind::Truncated, &name, "shorter than its header says")),
        }
        let mut slots = Vec::with_capacity(table.min(w.len()) / SLOT_WORDS);
        let mut next = 0u64;
        for i in 0..count as usize {
            let t = HEADER_WORDS + SLOT_WORDS * i;
            let fixed = w[t].load(Ordering::Relaxed);
            let (off, cap) = (fixed & 0xffff_ffff, fixed >> 32);
            if off != next || cap == 0 || cap % 8 != 0 {
                return Err(bad(ErrorKind::InvalidHeader, &name, &format!("slot {i}")));
            }
            next = off + cap / 8;
            if next > data_words {
                return Err(bad(ErrorKind::Truncated, &name, &format!("slot {i} past the end")));
            }
            slots.push(Slot { table: t, data: table + off as usize, cap: cap as usize });
        }
        Ok(ShareableList { shm, slots })
    }

    /// The name, to give other processes.
    pub fn name(&self) -> &str {
        self.shm.name()
    }

    /// The number of items (fixed at creation).
    pub fn len(&self) -> usize {
        self.slots.len()
    }

    /// Whether the list has no items.
    pub fn is_empty(&self) -> bool {
        self.slots.is_empty()
    }

    fn slot(&self, index: isize) -> Result<&Slot> {
        let len = self.slots.len();
        let i =
            if index < 0 { len.checked_sub(index.unsigned_abs()) } else { Some(index as usize) };
        i.and_then(|i| self.slots.get(i)).ok_or_else(|| {
            ListError::new(ListErrorKind::IndexOutOfRange, format!("index {index}, length {len}"))
        })
    }

    /// The item at `index` (negative: from the end).
    pub fn get(&self, index: isize) -> Result<Item> {
        self.read(self.slot(index)?)
    }

    /// Replaces the item at `index` (negative: from the end); its type may change. A value
    /// longer than the slot's storage is [`ListErrorKind::TooLarge`] and writes nothing.
    pub fn set(&self, index: isize, item: impl Into<Item>) -> Result<()> {
        let slot = self.slot(index)?;
        let item = item.into();
        let need = item.payload().len();
        if need > slot.cap {
            return Err(ListError::new(
                ListErrorKind::TooLarge,
                format!("{need} bytes into a slot of {} at index {index}", slot.cap),
            ));
        }
        self.write(slot, &item);
        Ok(())
    }

    /// The type of the item at `index`.
    pub fn kind(&self, index: isize) -> Result<ItemKind> {
        Ok(self.state(self.slot(index)?)?.0)
    }

    /// The storage of the slot at `index`, in bytes: the longest string or bytes it takes.
    pub fn capacity(&self, index: isize) -> Result<usize> {
        Ok(self.slot(index)?.cap)
    }

    /// Python's `format`: the `struct` codes of the items now (`q` int, `d` float, `8s` a
    /// string or bytes slot of 8 bytes, `xxxxxxx?` bool, `xxxxxx?x` None). A slot whose
    /// kind cannot be read shows as `?`.
    pub fn format(&self) -> String {
        (0..self.len() as isize)
            .map(|i| match self.kind(i) {
                Ok(k) => k.format(self.slots[i as usize].cap),
                Err(_) => "?".into(),
            })
            .collect()
    }

    /// How many items equal `item` (same type and value; unlike Python, `Int(1)` is not
    /// `Bool(true)`). Items that cannot be read are not counted.
    pub fn count(&self, item: &Item) -> usize {
        self.iter().filter(|x| x.as_ref().is_ok_and(|x| x == item)).count()
    }

    /// The first index holding `item`, or [`ListErrorKind::NotInList`].
    pub fn index(&self, item: &Item) -> Result<usize> {
        self.iter()
            .position(|x| x.as_ref().is_ok_and(|x| x == item))
            .ok_or_else(|| ListError::new(ListErrorKind::NotInList, format!("{item:?}")))
    }

    /// The items in order (each read when the iterator reaches it).
    pub fn iter(&self) -> impl Iterator<Item = Result<Item>> + '_ {
        self.slots.iter().map(|s| self.read(s))
    }

    /// Every item (Python's `list(sl)`); the first unreadable one is an error.
    pub fn to_vec(&self) -> Result<Vec<Item>> {
        self.iter().collect()
    }

    /// The shared-memory block underneath.
    pub fn shm(&self) -> &SharedMemory {
        &self.shm
    }

    /// Keeps the name after this handle is dropped or its process dies.
    pub fn persist(&mut self) {
        self.shm.persist()
    }

    /// Removes the name (Python's `sl.shm.unlink()`); handles already open keep working. A
    /// second unlink is `NotFound`.
    pub fn unlink(&mut self) -> crate::error::Result<()> {
        self.shm.unlink()
    }

    fn write(&self, slot: &Slot, item: &Item) {
        let w = self.shm.words();
        let bytes = item.payload();
        for (k, chunk) in bytes.chunks(8).enumerate() {
            let mut word = [0u8; 8];
            word[..chunk.len()].copy_from_slice(chunk);
            w[slot.data + k].store(u64::from_le_bytes(word), Ordering::Relaxed);
        }
        let state = item.kind() as u64 | (bytes.len() as u64) << 32;
        w[slot.table + 1].store(state, Ordering::Release);
    }

    /// The slot's kind and length, checked.
    fn state(&self, slot: &Slot) -> Result<(ItemKind, usize)> {
        let state = self.shm.words()[slot.table + 1].load(Ordering::Acquire);
        let len = (state >> 32) as usize;
        match ItemKind::from_code(state & 0xff) {
            Some(kind) if len <= slot.cap => Ok((kind, len)),
            _ => Err(ListErrorKind::InvalidData.into()),
        }
    }

    fn read(&self, slot: &Slot) -> Result<Item> {
        let w = self.shm.words();
        let (kind, len) = self.state(slot)?;
        let word = |k: usize| w[slot.data + k].load(Ordering::Relaxed);
        let bytes = || -> Vec<u8> {
            let mut v: Vec<u8> = (0..len.div_ceil(8)).flat_map(|k| word(k).to_le_bytes()).collect();
            v.truncate(len);
            v
        };
        Ok(match kind {
            ItemKind::None => Item::None,
            ItemKind::Int => Item::Int(word(0) as i64),
            ItemKind::Float => Item::Float(f64::from_bits(word(0))),
            ItemKind::Bool => Item::Bool(word(0) != 0),
            ItemKind::Bytes => Item::Bytes(bytes()),
            ItemKind::Str => Item::Str(
                String::from_utf8(bytes())
                    .map_err(|_| ListError::from(ListErrorKind::InvalidData))?,
            ),
        })
    }
}

impl fmt::Debug for ShareableList {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let items: Vec<_> = self.iter().map(|r| r.map_err(|e| e.kind())).collect();
        f.debug_struct("ShareableList").field("name", &self.name()).field("items", &items).finish()
    }
}

/// Passes the list to another process (spawned child, `Connection`) inside a transfer
/// context: only the block's descriptor and name travel, whatever the length.
impl serde::Serialize for ShareableList {
    fn serialize<S: serde::Serializer>(&self, s: S) -> std::result::Result<S::Ok, S::Error> {
        self.shm.serialize(s)
    }
}

impl<'de> serde::Deserialize<'de> for ShareableList {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> std::result::Result<Self, D::Error> {
        let shm = SharedMemory::deserialize(d)?;
        ShareableList::attach(shm).map_err(crate::transfer::de_error)
    }
}
