//! Taking over: entries delivered here whose reply was lost, and the tasks of hosts whose
//! heartbeat lapsed.

use super::tasks::{handle, Reader};
use super::Worker;
use crate::common::lock;
use crate::conn::Conn;
use crate::wire::GROUP;
use redis::streams::{StreamClaimReply, StreamPendingCountReply};
use std::collections::HashMap;

impl Reader {
    /// Takes up the entries pending for this host that it does not hold: Redis delivered them
    /// (and recorded the delivery) but the reply never arrived, as when Redis dies mid-reply.
    pub(super) fn recover_own(&mut self) {
        let Reader { w, conn, clients, tx } = self;
        let Some(pending) = pending(w, conn, None, "-", Some(&w.name)) else { return };
        let lost: Vec<String> = {
            let held = lock(&w.held);
            pending.ids.into_iter().map(|p| p.id).filter(|id| !held.contains(id)).collect()
        };
        if lost.is_empty() {
            return;
        }
        let Some(claimed) = claim(w, conn, &lost, 0) else { return };
        eprintln!(
            "multiproc-cluster worker {}: took up {} entries delivered while the reply was lost",
            w.name,
            claimed.ids.len()
        );
        for e in &claimed.ids {
            handle(w, conn, clients, tx, e, None);
        }
    }

    /// Claims the pending tasks of hosts whose heartbeat lapsed: each runs again here (within
    /// its retries) or fails with `WorkerDied` naming the dead host. Then forgets dead hosts
    /// that hold nothing.
    pub(super) fn reap(&mut self) {
        let Reader { w, conn, clients, tx } = self;
        // Only entries idle for half a lease can belong to a host whose lease lapsed (it
        // renews every quarter lease); pages of 1,000, at most 20 per round.
        let idle_ms = (w.heartbeat / 2).as_millis() as u64;
        let mut ids = Vec::new();
        let mut start = "-".to_string();
        for _ in 0..20 {
            let Some(page) = pending(w, conn, Some(idle_ms), &start, None) else { return };
            let full = page.ids.len() == PAGE;
            if let Some(last) = page.ids.last() {
                start = format!("({}", last.id);
            }
            ids.extend(page.ids);
            if !full {
                break;
            }
        }
        let mut alive: HashMap<String, bool> = HashMap::new();
        let mut by_dead: HashMap<String, Vec<(String, usize)>> = HashMap::new();
        for p in ids {
            if p.consumer == w.name {
                continue;
            }
            let is_alive = match alive.get(&p.consumer) {
                Some(a) => *a,
                None => {
                    let a = conn.exists(&w.keys.worker(&p.consumer)) != Some(false);
                    alive.insert(p.consumer.clone(), a);
                    a
                }
            };
            if !is_alive {
                by_dead.entry(p.consumer).or_default().push((p.id, p.times_delivered));
            }
        }
        for (dead, ids) in by_dead {
            let id_list: Vec<&str> = ids.iter().map(|(i, _)| i.as_str()).collect();
            // A short min-idle: of two hosts claiming at once, only the first gets an entry.
            let Some(claimed) = claim(w, conn, &id_list, 100) else { continue };
            eprintln!(
                "multiproc-cluster worker {}: host {dead} is gone; claimed {} of its tasks",
                w.name,
                claimed.ids.len()
            );
            for e in &claimed.ids {
                let runs = ids.iter().find(|(i, _)| *i == e.id).map_or(1, |(_, n)| *n);
                handle(w, conn, clients, tx, e, Some((&dead, runs)));
            }
        }
        forget_dead_consumers(w, conn);
        self.recover_own();
    }
}

/// Entries per page of `XPENDING`.
const PAGE: usize = 1000;

/// A page of the pending entries from `start` on (`XPENDING`): those idle at least
/// `idle_ms`, of `consumer` only if given; `None` if Redis refused.
fn pending(
    w: &Worker,
    conn: &mut Conn,
    idle_ms: Option<u64>,
    start: &str,
    consumer: Option<&str>,
) -> Option<StreamPendingCountReply> {
    let tasks = w.keys.tasks();
    let r = conn.run(|con| {
        let mut c = redis::cmd("XPENDING");
        c.arg(&tasks).arg(GROUP);
        if let Some(ms) = idle_ms {
            c.arg("IDLE").arg(ms);
        }
        c.arg(start).arg("+").arg(PAGE).arg(consumer).query::<StreamPendingCountReply>(con)
    });
    r.and_then(|r| r.ok())
}

/// Claims the pending entries `ids` for this host, those idle for at least `min_idle_ms`
/// (of two hosts claiming at once, only the first gets an entry); `None` if Redis refused.
fn claim<I: redis::ToRedisArgs>(
    w: &Worker,
    conn: &mut Conn,
    ids: &[I],
    min_idle_ms: u64,
) -> Option<StreamClaimReply> {
    let tasks = w.keys.tasks();
    let r = conn.run(|con| {
        redis::cmd("XCLAIM")
            .arg(&tasks)
            .arg(GROUP)
            .arg(&w.name)
            .arg(min_idle_ms)
            .arg(ids)
            .query::<StreamClaimReply>(con)
    });
    r.and_then(|r| r.ok())
}

/// Removes group members that are gone and hold nothing, so the group stays bounded.
fn forget_dead_consumers(w: &Worker, conn: &mut Conn) {
    let tasks = w.keys.tasks();
    let Some(Ok(info)) = conn.run(|con| {
        redis::cmd("XINFO")
            .arg("CONSUMERS")
            .arg(&tasks)
            .arg(GROUP)
            .query::<Vec<HashMap<String, redis::Value>>>(con)
    }) else {
        return;
    };
    for c in info {
        let name = match c.get("name") {
            Some(redis::Value::BulkString(b)) => String::from_utf8_lossy(b).into_owned(),
            Some(redis::Value::SimpleString(s)) => s.clone(),
            _ => continue,
        };
        let pending = matches!(c.get("pending"), Some(redis::Value::Int(n)) if *n > 0);
        if name == w.name || pending {
            continue;
        }
        if conn.exists(&w.keys.worker(&name)) == Some(false) {
            let _ = conn.run(|con| {
                redis::cmd("XGROUP")
                    .arg("DELCONSUMER")
                    .arg(&tasks)
                    .arg(GROUP)
                    .arg(&name)
                    .query::<i64>(con)
            });
        }
    }
}
