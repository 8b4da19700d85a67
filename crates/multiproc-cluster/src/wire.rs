//! What travels through Redis: task and result entries, their HMACs, and the key names.
//!
//! A task entry has two fields: `m`, the postcard bytes of a [`TaskMsg`], and `s`, an
//! HMAC-SHA256 of `m` under the executor's authkey (with a domain label, so a result can
//! never pass for a task). A result entry is the same with a [`ResultMsg`].

use hmac::{Hmac, Mac};
use multiproc_pool::{Error as TaskError, ErrorKind as TaskErrorKind};
use serde::{Deserialize, Serialize};
use sha2::Sha256;

type HmacSha256 = Hmac<Sha256>;

const TASK_DOMAIN: &[u8] = b"multiproc-cluster task v1";
const RESULT_DOMAIN: &[u8] = b"multiproc-cluster result v1";

/// The consumer group of the workers.
pub(crate) const GROUP: &str = "workers";

/// A task: a chunk of `count` items of one function, for client `client`.
#[derive(Debug, Serialize, Deserialize)]
pub(crate) struct TaskMsg {
    pub(crate) client: String,
    pub(crate) id: u64,
    /// A sealed `RemoteFn` (bound to the client's build).
    pub(crate) func: Vec<u8>,
    pub(crate) count: u32,
    /// Times the task may be run again after its worker host died.
    pub(crate) retries: u32,
    /// Per-task timeout in milliseconds; 0 for none.
    pub(crate) timeout_ms: u64,
    /// How long the client's result stream lives without the client (milliseconds).
    pub(crate) ttl_ms: u64,
    pub(crate) payload: Vec<u8>,
}

/// How a task ended.
#[derive(Debug, Serialize, Deserialize)]
pub(crate) enum Outcome {
    /// The items' encoded outcomes (`multiproc_pool::remote::decode_outcomes`).
    Items(Vec<u8>),
    /// The whole task failed.
    Failed { kind: u8, detail: String },
}

/// A task's result, for its client.
#[derive(Debug, Serialize, Deserialize)]
pub(crate) struct ResultMsg {
    pub(crate) id: u64,
    /// The worker host that ran (or gave up on) the task.
    pub(crate) host: String,
    /// Time the task took on its host, in microseconds.
    pub(crate) busy_us: u64,
    pub(crate) outcome: Outcome,
}

fn mac(key: &[u8], domain: &[u8], m: &[u8]) -> HmacSha256 {
    let mut h = HmacSha256::new_from_slice(key).expect("HMAC takes a key of any length");
    h.update(domain);
    h.update(m);
    h
}

pub(crate) fn sign_task(key: &[u8], m: &[u8]) -> Vec<u8> {
    mac(key, TASK_DOMAIN, m).finalize().into_bytes().to_vec()
}

pub(crate) fn verify_task(key: &[u8], m: &[u8], s: &[u8]) -> bool {
    mac(key, TASK_DOMAIN, m).verify_slice(s).is_ok()
}

pub(crate) fn sign_result(key: &[u8], m: &[u8]) -> Vec<u8> {
    mac(key, RESULT_DOMAIN, m).finalize().into_bytes().to_vec()
}

pub(crate) fn verify_result(key: &[u8], m: &[u8], s: &[u8]) -> bool {
    mac(key, RESULT_DOMAIN, m).verify_slice(s).is_ok()
}

/// The names of one namespace's keys.
#[derive(Debug, Clone)]
pub(crate) struct Keys {
    ns: String,
}

impl Keys {
    pub(crate) fn new(ns: &str) -> Self {
        Keys { ns: ns.to_string() }
    }

    /// The stream of tasks (consumer group [`GROUP`]).
    pub(crate) fn tasks(&self) -> String {
        format!("{}:tasks", self.ns)
    }

    /// A client's result stream (expires unless the client keeps it alive).
    pub(crate) fn results(&self, client: &str) -> String {
        format!("{}:results:{client}", self.ns)
    }

    /// A client's heartbeat (expires when the client dies).
    pub(crate) fn client(&self, client: &str) -> String {
        format!("{}:client:{client}", self.ns)
    }

    /// A worker host's heartbeat.
    pub(crate) fn worker(&self, name: &str) -> String {
        format!("{}:worker:{name}", self.ns)
    }

    /// The capped log of rejected entries.
    pub(crate) fn rejected(&self) -> String {
        format!("{}:rejected", self.ns)
    }
}

const KINDS: &[TaskErrorKind] = &[
    TaskErrorKind::Panicked,
    TaskErrorKind::WorkerDied,
    TaskErrorKind::TaskTimedOut,
    TaskErrorKind::Timeout,
    TaskErrorKind::Cancelled,
    TaskErrorKind::Codec,
    TaskErrorKind::Initializer,
    TaskErrorKind::Terminated,
    TaskErrorKind::NotRunning,
    TaskErrorKind::StillRunning,
    TaskErrorKind::InvalidArgument,
    TaskErrorKind::Unsupported,
    TaskErrorKind::Spawn,
    TaskErrorKind::AlreadyTaken,
    TaskErrorKind::Refused,
];

/// A task error as it travels, its detail prefixed with the host it happened on.
pub(crate) fn failed(e: &TaskError, host: &str) -> Outcome {
    let kind = KINDS.iter().position(|k| *k == e.kind()).unwrap_or(usize::MAX) as u8;
    let detail = match e.detail() {
        Some(d) => format!("on host {host}: {d}"),
        None => format!("on host {host}"),
    };
    Outcome::Failed { kind, detail }
}

/// A failure of `kind` with `detail`, as it travels.
pub(crate) fn failure(kind: TaskErrorKind, detail: String) -> Outcome {
    let kind = KINDS.iter().position(|k| *k == kind).unwrap_or(usize::MAX) as u8;
    Outcome::Failed { kind, detail }
}

/// The error a [`Outcome::Failed`] stands for.
pub(crate) fn task_error(kind: u8, detail: String) -> TaskError {
    let k = KINDS.get(kind as usize).copied().unwrap_or(TaskErrorKind::Codec);
    TaskError::new(k, detail)
}

/// A random hex name (client ids).
pub(crate) fn random_hex() -> String {
    format!("{:016x}", multiproc_arena::random_u64())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn signatures_bind_key_payload_and_direction() {
        let s = sign_task(b"k", b"payload");
        assert!(verify_task(b"k", b"payload", &s));
        assert!(!verify_task(b"other", b"payload", &s));
        assert!(!verify_task(b"k", b"payloaD", &s));
        assert!(!verify_task(b"k", b"payload", &s[..31]));
        assert!(!verify_result(b"k", b"payload", &s), "a task signature is no result signature");
        assert!(verify_result(b"k", b"r", &sign_result(b"k", b"r")));
    }

    #[test]
    fn task_errors_travel_with_their_kind_and_host() {
        let e =
            TaskError::new(TaskErrorKind::WorkerDied, "worker 12 ended with signal 9 (SIGKILL)");
        let Outcome::Failed { kind, detail } = failed(&e, "host-a/7") else { panic!() };
        let back = task_error(kind, detail);
        assert_eq!(back.kind(), TaskErrorKind::WorkerDied);
        assert_eq!(
            back.detail(),
            Some("on host host-a/7: worker 12 ended with signal 9 (SIGKILL)")
        );
        assert_eq!(task_error(250, "?".into()).kind(), TaskErrorKind::Codec);
        for k in KINDS {
            let Outcome::Failed { kind, .. } = failure(*k, String::new()) else { panic!() };
            assert_eq!(task_error(kind, String::new()).kind(), *k);
        }
    }
}
