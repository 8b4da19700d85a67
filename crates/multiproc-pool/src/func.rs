//! Task functions as a worker runs them, and the wire format of tasks and results.
//!
//! A task message carries a chunk of `count` items, each encoded with postcard back to
//! back. The worker answers with one outcome per item: a tag byte, then the postcard bytes
//! of the value (`TAG_OK`) or of a message (`TAG_PANIC`, `TAG_CODEC`). Items are caught one by
//! one (`catch_unwind`), so a panic fails only its own item.

use crate::ser_error::SerFailure;
use multiproc_spawn::{panic_payload_str, FnRef, FNREF_LEN};
use serde::de::DeserializeOwned;
use serde::Serialize;
use std::any::Any;
use std::cell::RefCell;
use std::panic::{catch_unwind, AssertUnwindSafe};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Once};

pub(crate) const TAG_OK: u8 = 0;
pub(crate) const TAG_PANIC: u8 = 1;
pub(crate) const TAG_CODEC: u8 = 2;

// Parent → worker.
pub(crate) const MSG_TASK: u8 = 1;
pub(crate) const MSG_STOP: u8 = 2;
// Worker → parent.
pub(crate) const MSG_READY: u8 = 0x10;
pub(crate) const MSG_INIT_FAILED: u8 = 0x11;
pub(crate) const MSG_RESULT: u8 = 0x12;

/// Bytes before the payload of a task message: kind, seq, count, table index, function
/// reference.
pub(crate) const TASK_HEADER: usize = 1 + 8 + 4 + 4 + FNREF_LEN;
/// Bytes before the items of a result message: kind, id, busy ns, count.
pub(crate) const RESULT_HEADER: usize = 1 + 8 + 8 + 4;

/// Runs `count` items: decodes the arguments from `input`, appends one outcome per item to
/// `out`. The state is the worker's (`()` for a stateless pool).
pub(crate) type Runner = Arc<dyn Fn(&mut dyn Any, &[u8], u32, &mut Vec<u8>) + Send + Sync>;

/// Builds a worker's state (runs once per worker process).
pub(crate) type InitFn = Arc<dyn Fn() -> Box<dyn Any> + Send + Sync>;

/// What a task function named across processes works on: the worker's state, the chunk's
/// encoded arguments, and the buffer its outcomes are appended to (moved in and back out).
pub(crate) struct TaskIo {
    pub(crate) state: Box<dyn Any>,
    pub(crate) input: Vec<u8>,
    pub(crate) count: u32,
    pub(crate) out: Vec<u8>,
}

/// A task function by name (every start method): see [`crate::task::shim_ref`].
pub(crate) type ShimRef = FnRef<TaskIo, TaskIo>;

/// A resolved [`ShimRef`].
type ShimFn = fn(TaskIo) -> TaskIo;

/// A state constructor by name, given its encoded argument.
pub(crate) type InitRef = FnRef<Vec<u8>, Box<dyn Any>>;

/// How a task names its function.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum FuncRef {
    /// Entry of the pool's closure table (fork: workers started after it was added).
    Table(u32),
    /// A checked reference (every start method).
    Portable(ShimRef),
    /// A function pointer: a checked reference to the generic runner of its type, and the
    /// pointer's own checked reference ([`FnRef::to_bytes`]), which leads each task's
    /// payload (every start method; see [`crate::task::pointer_ref`]).
    Pointer(ShimRef, [u8; FNREF_LEN]),
}

impl FuncRef {
    /// The closure-table length a worker needs to run this.
    pub(crate) fn needs_gen(self) -> usize {
        match self {
            FuncRef::Table(i) => i as usize + 1,
            FuncRef::Portable(_) | FuncRef::Pointer(..) => 0,
        }
    }

    /// Bytes sent before each task's payload.
    pub(crate) fn prefix(&self) -> &[u8] {
        match self {
            FuncRef::Pointer(_, target) => target,
            _ => &[],
        }
    }

    /// The table index (`u32::MAX` for a reference) and the reference's bytes.
    pub(crate) fn encode(self) -> (u32, [u8; FNREF_LEN]) {
        match self {
            FuncRef::Table(i) => (i, [0; FNREF_LEN]),
            FuncRef::Portable(r) | FuncRef::Pointer(r, _) => (u32::MAX, r.to_bytes()),
        }
    }
}

/// A worker's resolved task function, kept while the tasks name the same one.
#[derive(Default)]
pub(crate) struct Portable {
    last: Option<([u8; FNREF_LEN], Result<ShimFn, String>)>,
    input: Vec<u8>,
}

impl Portable {
    /// Runs the task function named by `bytes` on `count` items of `input`, appending their
    /// outcomes to `out`; a reference that does not resolve fails each item with its reason.
    pub(crate) fn run(
        &mut self,
        bytes: [u8; FNREF_LEN],
        state: &mut Box<dyn Any>,
        input: &[u8],
        count: u32,
        out: &mut Vec<u8>,
    ) {
        let f = match &self.last {
            Some((b, f)) if *b == bytes => f,
            _ => {
                let f = ShimRef::from_bytes(bytes).resolve().map_err(|e| e.to_string());
                &self.last.insert((bytes, f)).1
            }
        };
        let f = match f {
            Ok(f) => *f,
            Err(why) => return fail_all(out, count, &format!("bad task function: {why}")),
        };
        let mut buf = std::mem::take(&mut self.input);
        buf.clear();
        buf.extend_from_slice(input);
        let io = f(TaskIo {
            state: std::mem::replace(state, Box::new(())),
            input: buf,
            count,
            out: std::mem::take(out),
        });
        *state = io.state;
        *out = io.out;
        self.input = io.input;
    }
}

/// The state constructor named by `r`, run on `arg`; a reference that does not resolve
/// fails the worker's start (an initializer error) with its reason.
pub(crate) fn portable_init(r: &InitRef, arg: &[u8]) -> InitFn {
    let f = r.resolve();
    let arg = arg.to_vec();
    Arc::new(move || match &f {
        Ok(f) => f(arg.clone()),
        Err(e) => panic!("bad initializer: {e}"),
    })
}

/// An `Extend<u8>` over a borrowed `Vec`, so postcard can append to a buffer we keep (and
/// truncate) when serialisation fails halfway.
pub(crate) struct Append<'a>(pub(crate) &'a mut Vec<u8>);

impl Extend<u8> for Append<'_> {
    fn extend<I: IntoIterator<Item = u8>>(&mut self, iter: I) {
        self.0.extend(iter)
    }
}

impl<'a> Extend<&'a u8> for Append<'_> {
    fn extend<I: IntoIterator<Item = &'a u8>>(&mut self, iter: I) {
        self.0.extend(iter)
    }
}

/// Appends `v`'s postcard bytes to `out`; on failure `out` is unchanged, and the error has
/// the serializer's own message (see [`SerFailure`]).
pub(crate) fn encode_append<T: Serialize + ?Sized>(
    v: &T,
    out: &mut Vec<u8>,
) -> Result<(), SerFailure> {
    let mark = out.len();
    match postcard::to_extend(v, Append(out)) {
        Ok(_) => Ok(()),
        Err(e) => {
            out.truncate(mark);
            Err(SerFailure::of(v, e))
        }
    }
}

fn push_failure(out: &mut Vec<u8>, tag: u8, msg: &str) {
    out.push(tag);
    encode_append(msg, out).expect("a string always serialises");
}

thread_local! {
    /// The message and location of the last panic on this thread (set by the worker's hook).
    static LAST_PANIC: RefCell<Option<String>> = const { RefCell::new(None) };
}

/// Set in worker processes: the pool's panic hook then records the panic for the task's
/// error instead of printing it.
static IN_WORKER: AtomicBool = AtomicBool::new(false);

/// Marks this process as a pool worker (see [`install_panic_hook`]).
pub(crate) fn set_in_worker(on: bool) {
    IN_WORKER.store(on, Ordering::SeqCst);
}

/// Installs, once per process, a panic hook that in a worker records "message (at
/// file:line:col)" for the task's error instead of printing, and elsewhere defers to the
/// hook it replaced.
///
/// The parent installs it before it forks workers, so a forked worker never calls
/// `set_hook` itself, nor runs the default hook: both take process-wide locks (the hook's,
/// the backtrace printer's, stderr's) that another thread of the parent may have held at
/// the fork, which would hang the worker at its first panic.
pub(crate) fn install_panic_hook() {
    static ONCE: Once = Once::new();
    ONCE.call_once(|| {
        let prev = std::panic::take_hook();
        std::panic::set_hook(Box::new(move |info| {
            if !IN_WORKER.load(Ordering::Relaxed) {
                return prev(info);
            }
            let msg = payload_text(info.payload());
            let text = match info.location() {
                Some(l) => format!("{msg} (at {}:{}:{})", l.file(), l.line(), l.column()),
                None => msg,
            };
            LAST_PANIC.with(|p| *p.borrow_mut() = Some(text));
        }));
    });
}

fn payload_text(p: &(dyn Any + Send)) -> String {
    panic_payload_str(p).unwrap_or("a panic with a non-string payload").to_string()
}

/// The message of a caught panic.
pub(crate) fn panic_message(p: Box<dyn Any + Send>) -> String {
    LAST_PANIC.with(|l| l.borrow_mut().take()).unwrap_or_else(|| payload_text(&*p))
}

/// Fails each of `count` items with `msg`.
pub(crate) fn fail_all(out: &mut Vec<u8>, count: u32, msg: &str) {
    for _ in 0..count {
        push_failure(out, TAG_CODEC, msg);
    }
}

/// A [`Runner`] for `f` over a worker state `S`.
pub(crate) fn runner<S, T, R, F>(f: F) -> Runner
where
    S: 'static,
    T: DeserializeOwned,
    R: Serialize,
    F: Fn(&mut S, T) -> R + Send + Sync + 'static,
{
    Arc::new(move |state: &mut dyn Any, input: &[u8], count: u32, out: &mut Vec<u8>| {
        run_on_state(state, input, count, out, |s: &mut S, t| f(s, t))
    })
}

/// Runs `call` on each of `count` items of `input` with the worker state, which must be an
/// `S` (each item fails with a codec error otherwise).
pub(crate) fn run_on_state<S: 'static, T, R>(
    state: &mut dyn Any,
    input: &[u8],
    count: u32,
    out: &mut Vec<u8>,
    mut call: impl FnMut(&mut S, T) -> R,
) where
    T: DeserializeOwned,
    R: Serialize,
{
    match state.downcast_mut::<S>() {
        Some(state) => run_items(input, count, out, |t| call(state, t)),
        None => fail_all(out, count, "worker state has an unexpected type"),
    }
}

/// Decodes `count` arguments from `input` one by one and runs `call` on each.
pub(crate) fn run_items<T, R>(
    mut input: &[u8],
    count: u32,
    out: &mut Vec<u8>,
    mut call: impl FnMut(T) -> R,
) where
    T: DeserializeOwned,
    R: Serialize,
{
    for i in 0..count {
        let arg = match postcard::take_from_bytes::<T>(input) {
            Ok((t, rest)) => {
                input = rest;
                t
            }
            Err(e) => {
                let msg = format!("cannot decode the task's argument: {e}");
                return fail_all(out, count - i, &msg);
            }
        };
        match catch_unwind(AssertUnwindSafe(|| call(arg))) {
            Ok(r) => {
                out.push(TAG_OK);
                if let Err(e) = encode_append(&r, out) {
                    out.pop();
                    push_failure(out, TAG_CODEC, &e.describe("the result"));
                }
            }
            Err(p) => push_failure(out, TAG_PANIC, &panic_message(p)),
        }
    }
}

/// Reads one item outcome from `data`: `Ok(Ok(value))`, `Ok(Err((tag, message)))`, or `Err`
/// if the bytes are malformed. Advances `data`.
pub(crate) fn take_outcome<R: DeserializeOwned>(
    data: &mut &[u8],
) -> Result<Result<R, (u8, String)>, String> {
    let (&tag, rest) = data.split_first().ok_or("truncated result")?;
    match tag {
        TAG_OK => {
            let (v, rest) = postcard::take_from_bytes::<R>(rest)
                .map_err(|e| format!("cannot decode the result: {e}"))?;
            *data = rest;
            Ok(Ok(v))
        }
        TAG_PANIC | TAG_CODEC => {
            let (m, rest) =
                postcard::take_from_bytes::<String>(rest).map_err(|e| format!("bad error: {e}"))?;
            *data = rest;
            Ok(Err((tag, m)))
        }
        t => Err(format!("unknown result tag {t}")),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn items_round_trip_with_panics_isolated() {
        install_panic_hook();
        set_in_worker(true);
        let r = runner::<(), u32, u64, _>(|_, x| {
            if x == 2 {
                panic!("two is bad");
            }
            x as u64 * 10
        });
        let mut input = Vec::new();
        for x in 0..4u32 {
            encode_append(&x, &mut input).unwrap();
        }
        let mut out = Vec::new();
        r(&mut (), &input, 4, &mut out);
        set_in_worker(false);
        let mut d = &out[..];
        assert_eq!(take_outcome::<u64>(&mut d).unwrap(), Ok(0));
        assert_eq!(take_outcome::<u64>(&mut d).unwrap(), Ok(10));
        let (tag, msg) = take_outcome::<u64>(&mut d).unwrap().unwrap_err();
        assert_eq!(tag, TAG_PANIC);
        assert!(msg.starts_with("two is bad (at ") && msg.contains("func.rs"), "{msg}");
        assert_eq!(take_outcome::<u64>(&mut d).unwrap(), Ok(30));
        assert!(d.is_empty());
    }

    fn add_one(x: u32) -> u32 {
        x + 1
    }

    #[test]
    fn a_named_task_runs_and_a_garbled_name_fails_its_items() {
        let good = crate::task::shim_ref::<(), u32, u32, crate::task::Plain, _>(&add_one)
            .unwrap()
            .to_bytes();
        let mut input = Vec::new();
        for x in [1u32, 2] {
            encode_append(&x, &mut input).unwrap();
        }
        let mut portable = Portable::default();
        let mut state: Box<dyn Any> = Box::new(());
        let mut out = vec![9u8];
        portable.run(good, &mut state, &input, 2, &mut out);
        let mut d = &out[1..];
        assert_eq!(take_outcome::<u32>(&mut d).unwrap(), Ok(2));
        assert_eq!(take_outcome::<u32>(&mut d).unwrap(), Ok(3));
        assert!(d.is_empty() && out[0] == 9);
        for i in [0, 9, 20] {
            let mut bad = good;
            bad[i] ^= 4;
            let mut out = Vec::new();
            portable.run(bad, &mut state, &input, 2, &mut out);
            let mut d = &out[..];
            for _ in 0..2 {
                let (tag, msg) = take_outcome::<u32>(&mut d).unwrap().unwrap_err();
                assert_eq!(tag, TAG_CODEC);
                assert!(msg.starts_with("bad task function: "), "{msg}");
            }
            assert!(d.is_empty());
        }
        // The good name again, after the cache held a bad one.
        let mut out = Vec::new();
        portable.run(good, &mut state, &input, 1, &mut out);
        assert_eq!(take_outcome::<u32>(&mut &out[..]).unwrap(), Ok(2));
    }

    #[test]
    fn a_garbled_initializer_name_fails_the_start() {
        let r = crate::task::init0_ref::<u8, _>(&|| 5u8).unwrap();
        let s = portable_init(&r, &[])();
        assert_eq!(s.downcast_ref::<u8>(), Some(&5));
        let mut b = r.to_bytes();
        b[12] ^= 1;
        let init = portable_init(&InitRef::from_bytes(b), &[]);
        let p = catch_unwind(AssertUnwindSafe(|| init())).map(|_| ()).unwrap_err();
        let msg = payload_text(&*p);
        assert!(msg.starts_with("bad initializer: ") && msg.contains("not for a fn"), "{msg}");
    }

    #[test]
    fn bad_state_type_and_bad_input_are_codec_errors() {
        let r = runner::<String, u32, u32, _>(|_, x| x);
        let mut out = Vec::new();
        r(&mut 5u8, &[1], 1, &mut out);
        let mut d = &out[..];
        assert_eq!(take_outcome::<u32>(&mut d).unwrap().unwrap_err().0, TAG_CODEC);
        let r = runner::<(), String, u32, _>(|_, s| s.len() as u32);
        let mut out = Vec::new();
        r(&mut (), &[200], 2, &mut out);
        let mut d = &out[..];
        assert_eq!(take_outcome::<u32>(&mut d).unwrap().unwrap_err().0, TAG_CODEC);
        assert_eq!(take_outcome::<u32>(&mut d).unwrap().unwrap_err().0, TAG_CODEC);
    }
}
