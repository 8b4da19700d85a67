//! [`FnRef`]: a function of this executable, named so that another process can call it.
//!
//! A function pointer differs from run to run (ASLR), but the distance between two functions
//! of one executable does not: a reference carries the function's offset from this crate's
//! anchor (see [`crate::child`]), a hash of its type, and a tag. The tag is a SipHash-2-4
//! under a key that belongs to this process tree — random in the main process, inherited by
//! every child it starts (fork, spawn, forkserver), never shown — over the executable's
//! identity, the offset and the type. Only [`FnRef::new`] and [`FnRef::of`] compute tags,
//! and only from a real function, so a reference that resolves was made from a function of
//! that type in this executable by a process of this tree. Anything else — bytes garbled in
//! transit, an offset written by hand, a reference from another program or another tree —
//! is refused with an error before any address is formed.
//!
//! Between process trees (other hosts) a reference travels sealed:
//! [`seal`](FnRef::seal) binds it to the executable's SHA-256 ([`build_id`]) with an
//! HMAC-SHA256 under a key the two sides share, and [`unseal`](FnRef::unseal) re-tags it for
//! this tree only if the HMAC verifies and the build is this one. The key holder is trusted
//! as this program's own code is: whoever holds the key can name any function of the
//! executable.

use crate::child;
use crate::error::{Error, ErrorKind, Result};
use hmac::{Hmac, Mac};
use sha2::{Digest, Sha256};
use std::any::TypeId;
use std::fmt;
use std::hash::{Hash, Hasher};
use std::io::Read;
use std::marker::PhantomData;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::OnceLock;

/// Bytes of [`FnRef::to_bytes`]: offset, type hash, tag.
pub const FNREF_LEN: usize = 24;

/// Bytes of [`FnRef::seal`]: build identity, offset, type hash, HMAC.
pub const SEALED_FNREF_LEN: usize = 32 + 8 + 8 + 32;

const SEAL_DOMAIN: &[u8] = b"multiproc-spawn fnref v1";

/// A function `fn(A) -> R` of this executable that another process of this process tree can
/// call: made with [`new`](Self::new) from a function pointer
/// or with [`of`](Self::of) from a function item or closure without captures; sent as
/// [`to_bytes`](Self::to_bytes) or with serde; turned back into a function with
/// [`resolve`](Self::resolve), which checks it first.
///
/// ```
/// use multiproc_spawn::FnRef;
/// fn double(x: u32) -> u64 {
///     x as u64 * 2
/// }
/// let r = FnRef::new(double as fn(u32) -> u64)?;
/// let back = FnRef::<u32, u64>::from_bytes(r.to_bytes());
/// assert_eq!(back.resolve()?(21), 42);
/// let mut forged = r.to_bytes();
/// forged[0] ^= 8;
/// assert!(FnRef::<u32, u64>::from_bytes(forged).resolve().is_err());
/// # Ok::<(), multiproc_spawn::Error>(())
/// ```
#[derive(serde::Serialize, serde::Deserialize)]
#[serde(bound = "")]
pub struct FnRef<A, R> {
    offset: i64,
    sig: u64,
    tag: u64,
    #[serde(skip)]
    _f: PhantomData<fn(A) -> R>,
}

impl<A, R> Clone for FnRef<A, R> {
    fn clone(&self) -> Self {
        *self
    }
}

impl<A, R> Copy for FnRef<A, R> {}

impl<A, R> PartialEq for FnRef<A, R> {
    fn eq(&self, o: &Self) -> bool {
        (self.offset, self.sig, self.tag) == (o.offset, o.sig, o.tag)
    }
}

impl<A, R> Eq for FnRef<A, R> {}

impl<A, R> fmt::Debug for FnRef<A, R> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("FnRef").field("offset", &self.offset).field("sig", &self.sig).finish()
    }
}

/// The hash of the type `fn(A) -> R` (its `TypeId`: the same in every run of one executable).
fn sig<A: 'static, R: 'static>() -> u64 {
    let mut h = siphasher([0, 0]);
    TypeId::of::<fn(A) -> R>().hash(&mut h);
    h.finish()
}

#[allow(deprecated)] // std's SipHasher is SipHash-2-4, the keyed MAC wanted here
fn siphasher(key: [u64; 2]) -> std::hash::SipHasher {
    std::hash::SipHasher::new_with_keys(key[0], key[1])
}

/// This process's copy of its tree's tag key (see [`crate::state::Info::fn_key`]), read once
/// from its state; cleared by [`forget_key`] in every new child, whose state may say
/// otherwise (a forkserver's children belong to the trees of the processes that asked for
/// them).
static KEY: [AtomicU64; 2] = [AtomicU64::new(0), AtomicU64::new(0)];
static KEY_SET: AtomicBool = AtomicBool::new(false);

fn tree_key() -> [u64; 2] {
    if !KEY_SET.load(Ordering::Acquire) {
        let k = crate::state::state().info().fn_key;
        KEY[0].store(k[0], Ordering::Relaxed);
        KEY[1].store(k[1], Ordering::Relaxed);
        KEY_SET.store(true, Ordering::Release);
        return k;
    }
    [KEY[0].load(Ordering::Relaxed), KEY[1].load(Ordering::Relaxed)]
}

/// In a new child, before anything else of this crate: its key comes from its own state.
pub(crate) fn forget_key() {
    KEY_SET.store(false, Ordering::Release);
}

/// The executable's identity on this host: device, inode, size and modification time of
/// `/proc/self/exe` (a re-executed child opens that very file).
fn exe_fingerprint() -> [u64; 4] {
    static FP: OnceLock<[u64; 4]> = OnceLock::new();
    *FP.get_or_init(|| {
        use std::os::unix::fs::MetadataExt;
        match std::fs::metadata("/proc/self/exe") {
            Ok(m) => [m.dev(), m.ino(), m.size(), m.mtime() as u64 ^ (m.mtime_nsec() as u64)],
            // No identity: one no other process shares, so nothing resolves elsewhere.
            Err(_) => [multiproc_arena::random_u64(), multiproc_arena::random_u64(), 0, 0],
        }
    })
}

fn tag(offset: i64, sig: u64) -> u64 {
    let mut h = siphasher(tree_key());
    exe_fingerprint().hash(&mut h);
    offset.hash(&mut h);
    sig.hash(&mut h);
    h.finish()
}

fn refused(why: impl Into<String>) -> Error {
    Error::new(ErrorKind::InvalidReference, why)
}

impl<A: 'static, R: 'static> FnRef<A, R> {
    /// A reference to `f`, which must lie in the main executable (not in a shared library,
    /// whose place differs from process to process): [`ErrorKind::InvalidReference`] otherwise.
    pub fn new(f: fn(A) -> R) -> Result<FnRef<A, R>> {
        let offset = child::offset_of(f as usize).ok_or_else(|| {
            refused("the function is not in the main executable, so it has no name there")
        })?;
        let sig = sig::<A, R>();
        Ok(FnRef { offset, sig, tag: tag(offset, sig), _f: PhantomData })
    }

    /// A reference to `f`, a function item or a closure without captures (zero-sized, and
    /// without drop glue): in the resolving process the function is called through a
    /// trampoline of this crate that reproduces `f`'s value. A closure that captures (or a
    /// value with drop glue) is refused with [`ErrorKind::ClosureNeedsFork`]: what it holds
    /// lives in this process only.
    ///
    /// Pass only what you could also write as a function: a zero-sized closure can also be
    /// one that moved a zero-sized value into itself, and the trampoline reproduces that
    /// value in the other process too.
    pub fn of<F>(f: &F) -> Result<FnRef<A, R>>
    where
        F: Fn(A) -> R + Send + Sync + 'static,
    {
        FnRef::of_adapted(f, &|f: &F, a: A| f(a))
    }

    /// A reference that calls `adapter(&f, a)`: [`of`](Self::of) for a function whose
    /// signature is not `fn(A) -> R` (a task function behind a pool's wire format, say).
    /// `f` and `adapter` are held to what [`of`](Self::of) asks of `f`.
    pub fn of_adapted<F, G>(f: &F, adapter: &G) -> Result<FnRef<A, R>>
    where
        F: Send + Sync + 'static,
        G: Fn(&F, A) -> R + Send + Sync + 'static,
    {
        let _ = (f, adapter);
        if !stateless::<F>() || !stateless::<G>() {
            return Err(Error::new(
                ErrorKind::ClosureNeedsFork,
                "a closure that captures cannot be named in another process; pass a function \
                 item or a closure without captures",
            ));
        }
        FnRef::new(call_zero_sized::<F, G, A, R>)
    }

    /// The function, if this reference was made for a `fn(A) -> R` by a process of this
    /// process tree running this executable ([`ErrorKind::InvalidReference`] otherwise: a
    /// reference of another type, another program or another tree, or garbled bytes).
    pub fn resolve(&self) -> Result<fn(A) -> R> {
        if self.sig != sig::<A, R>() {
            return Err(refused(format!(
                "the function reference is not for a fn({}) -> {}",
                std::any::type_name::<A>(),
                std::any::type_name::<R>()
            )));
        }
        if self.tag != tag(self.offset, self.sig) {
            return Err(refused(
                "the function reference was not made by this program's process tree (forged, \
                 garbled, or from another executable)",
            ));
        }
        let Some(addr) = child::address_of(self.offset) else {
            return Err(refused("the function reference does not lie in this executable"));
        };
        // The tag verified above is computed only by `new`, from a `fn(A) -> R` (the
        // signature hash, a `TypeId`, matches) of this same executable (its fingerprint is in
        // the tag, and `address_of` checked the address lies in it), relocated by the same
        // anchor distance in every process of the tree.
        // SAFETY: `addr` is that `fn(A) -> R` here (above); a fn pointer is a usize wide.
        Ok(unsafe { std::mem::transmute::<usize, fn(A) -> R>(addr) })
    }

    /// The reference as bytes (for [`from_bytes`](Self::from_bytes) in another process).
    pub fn to_bytes(&self) -> [u8; FNREF_LEN] {
        let mut b = [0u8; FNREF_LEN];
        b[..8].copy_from_slice(&self.offset.to_le_bytes());
        b[8..16].copy_from_slice(&self.sig.to_le_bytes());
        b[16..].copy_from_slice(&self.tag.to_le_bytes());
        b
    }

    /// A reference from bytes, checked when it is [resolved](Self::resolve).
    pub fn from_bytes(b: [u8; FNREF_LEN]) -> FnRef<A, R> {
        let word = |i: usize| u64::from_le_bytes(b[i..i + 8].try_into().expect("8 bytes"));
        FnRef { offset: word(0) as i64, sig: word(8), tag: word(16), _f: PhantomData }
    }

    /// The sealed form for another process tree running this executable (another host): this
    /// build's identity, the offset, the type hash, and an HMAC-SHA256 over them under `key`.
    /// The reference is resolved here first, so only a reference made in this tree is sealed.
    pub fn seal(&self, key: &[u8]) -> Result<[u8; SEALED_FNREF_LEN]> {
        self.resolve()?;
        let build = build_id();
        let mut out = [0u8; SEALED_FNREF_LEN];
        out[..32].copy_from_slice(build);
        out[32..40].copy_from_slice(&self.offset.to_le_bytes());
        out[40..48].copy_from_slice(&self.sig.to_le_bytes());
        let mac = seal_mac(key, &out[..48]).finalize().into_bytes();
        out[48..].copy_from_slice(&mac);
        Ok(out)
    }

    /// The reference sealed in `bytes`, if they were sealed under `key` by a process running
    /// this very executable, for a `fn(A) -> R`; re-tagged for this process tree.
    /// [`ErrorKind::InvalidReference`] for bytes of the wrong length, a bad HMAC, another build
    /// (the error names both) or another type.
    pub fn unseal(bytes: &[u8], key: &[u8]) -> Result<FnRef<A, R>> {
        if bytes.len() != SEALED_FNREF_LEN {
            return Err(refused("a sealed function reference of the wrong length"));
        }
        // The HMAC first: only a key holder's claim about its build is worth reporting.
        seal_mac(key, &bytes[..48])
            .verify_slice(&bytes[48..])
            .map_err(|_| refused("the function reference's signature is wrong"))?;
        if bytes[..32] != build_id()[..] {
            return Err(refused(format!(
                "the function comes from a different build of the program (build {}, this one \
                 is {}); run the same executable everywhere",
                short_hex(&bytes[..32]),
                short_hex(build_id())
            )));
        }
        let offset = i64::from_le_bytes(bytes[32..40].try_into().expect("8 bytes"));
        let sig = u64::from_le_bytes(bytes[40..48].try_into().expect("8 bytes"));
        let r = FnRef { offset, sig, tag: tag(offset, sig), _f: PhantomData };
        r.resolve()?;
        Ok(r)
    }
}

/// Whether a value of `T` holds nothing: zero-sized, without drop glue.
fn stateless<T>() -> bool {
    std::mem::size_of::<T>() == 0 && !std::mem::needs_drop::<T>()
}

/// The trampoline of [`FnRef::of_adapted`]: reproduces the zero-sized `F` and `G`, and calls
/// `adapter(&f, a)`.
fn call_zero_sized<F, G: Fn(&F, A) -> R, A, R>(a: A) -> R {
    // This function is instantiated only by `FnRef::of_adapted::<F, G>`, which takes a
    // value of each (so both types are inhabited) and checks that both are zero-sized and
    // without drop glue: function items or closures without captures, whose one value holds
    // no bytes and no resources.
    // SAFETY: `F` and `G` are such types (above); a zero-sized read of a dangling,
    // well-aligned pointer reads no memory.
    let (f, adapter): (F, G) = unsafe {
        (
            std::ptr::NonNull::<F>::dangling().as_ptr().read(),
            std::ptr::NonNull::<G>::dangling().as_ptr().read(),
        )
    };
    adapter(&f, a)
}

type HmacSha256 = Hmac<Sha256>;

fn seal_mac(key: &[u8], body: &[u8]) -> HmacSha256 {
    let mut mac = HmacSha256::new_from_slice(key).expect("HMAC takes a key of any length");
    mac.update(SEAL_DOMAIN);
    mac.update(body);
    mac
}

/// This executable's identity across hosts: the SHA-256 of `/proc/self/exe`, computed once
/// per process (a few hundred milliseconds for a large debug binary). Sealed references
/// travel only between processes whose identities are equal.
pub fn build_id() -> &'static [u8; 32] {
    static ID: OnceLock<[u8; 32]> = OnceLock::new();
    ID.get_or_init(|| {
        let mut h = Sha256::new();
        let mut buf = vec![0u8; 1 << 20];
        match std::fs::File::open("/proc/self/exe") {
            Ok(mut f) => loop {
                match f.read(&mut buf) {
                    Ok(0) => break,
                    Ok(n) => h.update(&buf[..n]),
                    Err(e) if e.kind() == std::io::ErrorKind::Interrupted => {}
                    Err(_) => {
                        // Unreadable: an identity no other process shares, so nothing is
                        // accepted from (or run for) another process.
                        h.update(multiproc_arena::random_u64().to_le_bytes());
                        break;
                    }
                }
            },
            Err(_) => h.update(multiproc_arena::random_u64().to_le_bytes()),
        }
        h.finalize().into()
    })
}

/// The first 8 bytes of an identity in hex.
pub fn short_hex(id: &[u8]) -> String {
    id.iter().take(8).map(|b| format!("{b:02x}")).collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn double(x: u32) -> u64 {
        x as u64 * 2
    }

    #[test]
    fn round_trips_and_refuses_garbled_bytes_other_types_and_captures() {
        let r = FnRef::new(double as fn(u32) -> u64).unwrap();
        assert_eq!(FnRef::<u32, u64>::from_bytes(r.to_bytes()).resolve().unwrap()(4), 8);
        let z = FnRef::<u32, u64>::of(&|x: u32| x as u64 + 1).unwrap();
        assert_eq!(z.resolve().unwrap()(4), 5);
        for i in 0..FNREF_LEN {
            let mut b = r.to_bytes();
            b[i] ^= 0x40;
            let e = FnRef::<u32, u64>::from_bytes(b).resolve().unwrap_err();
            assert_eq!(e.kind(), ErrorKind::InvalidReference, "{e}");
        }
        // The right bytes read as another type.
        let e = FnRef::<u32, u32>::from_bytes(r.to_bytes()).resolve().unwrap_err();
        assert!(e.to_string().contains("not for a fn(u32) -> u32"), "{e}");
        let k = 3u64;
        let e = FnRef::<u32, u64>::of(&move |x: u32| x as u64 + k).unwrap_err();
        assert_eq!(e.kind(), ErrorKind::ClosureNeedsFork);
    }

    #[test]
    fn sealing_round_trips_and_refuses_other_keys_builds_and_lengths() {
        let r = FnRef::new(double as fn(u32) -> u64).unwrap();
        let sealed = r.seal(b"key").unwrap();
        assert_eq!(FnRef::<u32, u64>::unseal(&sealed, b"key").unwrap(), r);
        let e = FnRef::<u32, u64>::unseal(&sealed, b"other").unwrap_err();
        assert!(e.to_string().contains("signature"), "{e}");
        assert!(FnRef::<u32, u64>::unseal(&sealed[1..], b"key").is_err());
        let mut other = sealed;
        other[..32].fill(7);
        let mac = seal_mac(b"key", &other[..48]).finalize().into_bytes();
        other[48..].copy_from_slice(&mac);
        let e = FnRef::<u32, u64>::unseal(&other, b"key").unwrap_err();
        assert!(e.to_string().contains("different build") && e.to_string().contains("0707"));
        // A key holder's offset of the wrong type is refused all the same.
        assert!(FnRef::<u64, u64>::unseal(&sealed, b"key").is_err());
    }
}
