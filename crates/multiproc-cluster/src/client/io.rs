//! The executor's two threads: one writes tasks to the stream, one reads results and keeps
//! the client's keys alive.

use super::{HostInsights, Outgoing, Shared, SEND_BATCH};
use crate::common::{field, lock};
use crate::conn::Conn;
use crate::wire::{self, Keys, ResultMsg};
use multiproc_pool::{Error as TaskError, ErrorKind as TaskErrorKind};
use redis::streams::StreamReadReply;
use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::time::{Duration, Instant};

pub(super) fn beat(
    con: &mut redis::Connection,
    keys: &Keys,
    id: &str,
    ttl: Duration,
) -> redis::RedisResult<()> {
    let ms = ttl.as_millis() as u64;
    redis::pipe()
        .cmd("SET")
        .arg(keys.client(id))
        .arg(1)
        .arg("PX")
        .arg(ms)
        .ignore()
        .cmd("PEXPIRE")
        .arg(keys.results(id))
        .arg(ms)
        .ignore()
        .query(con)
}

/// Writes queued tasks to the stream, a batch per round trip.
pub(super) fn sender(sh: Arc<Shared>) {
    let mut conn = Conn::new(sh.redis.clone(), Some(Duration::from_secs(10)), sh.stop.clone());
    let tasks = sh.keys.tasks();
    loop {
        let batch: Vec<Outgoing> = {
            let mut st = lock(&sh.st);
            loop {
                if sh.stop.load(Ordering::SeqCst) {
                    return;
                }
                // Tasks cancelled before they were written are dropped here.
                while let Some(o) = st.outbox.front() {
                    let dead = st.pending.get(&o.id).map_or(true, |e| e.waiter.all_cancelled());
                    if !dead {
                        break;
                    }
                    let id = o.id;
                    st.outbox.pop_front();
                    st.pending.remove(&id);
                    sh.cv.notify_all();
                }
                if !st.outbox.is_empty() {
                    break;
                }
                st = sh
                    .cv
                    .wait_timeout(st, Duration::from_millis(100))
                    .unwrap_or_else(|p| p.into_inner())
                    .0;
            }
            let n = st.outbox.len().min(SEND_BATCH);
            st.outbox.drain(..n).collect()
        };
        let r = conn.run(|con| {
            let mut p = redis::pipe();
            for o in &batch {
                p.cmd("XADD").arg(&tasks).arg("*").arg("m").arg(&o.m[..]).arg("s").arg(&o.s[..]);
            }
            p.query::<Vec<String>>(con)
        });
        match r {
            None => return,
            Some(Ok(ids)) => {
                let mut st = lock(&sh.st);
                for (o, sid) in batch.iter().zip(ids) {
                    if let Some(e) = st.pending.get_mut(&o.id) {
                        e.stream_id = Some(sid);
                    }
                }
            }
            Some(Err(e)) => {
                // Not a connection problem (say, an ACL refusal): the tasks fail.
                let err = TaskError::new(
                    TaskErrorKind::NotRunning,
                    format!("redis refused the task: {e}"),
                );
                let mut st = lock(&sh.st);
                let waiters: Vec<_> =
                    batch.iter().filter_map(|o| st.pending.remove(&o.id)).collect();
                drop(st);
                for w in waiters {
                    w.waiter.finish(wire::failed(&err, "(none)"));
                }
                sh.cv.notify_all();
            }
        }
    }
}

/// Reads results, finishes futures, keeps the client's keys alive, and removes the
/// entries of cancelled tasks.
pub(super) fn collector(sh: Arc<Shared>) {
    let mut conn = Conn::new(sh.redis.clone(), Some(Duration::from_secs(5)), sh.stop.clone());
    let results = sh.keys.results(&sh.id);
    let tasks = sh.keys.tasks();
    let mut last = "0".to_string();
    let beat_every = sh.ttl / 3;
    let mut next_beat = Instant::now();
    let mut next_sweep = Instant::now() + Duration::from_millis(100);
    loop {
        if sh.stop.load(Ordering::SeqCst) {
            return;
        }
        if Instant::now() >= next_beat {
            if conn.run(|con| beat(con, &sh.keys, &sh.id, sh.ttl)).is_none() {
                return;
            }
            next_beat = Instant::now() + beat_every;
        }
        if Instant::now() >= next_sweep {
            let doomed: Vec<String> = {
                let mut st = lock(&sh.st);
                let ids: Vec<u64> = st
                    .pending
                    .iter()
                    .filter(|(_, e)| e.stream_id.is_some() && e.waiter.all_cancelled())
                    .map(|(k, _)| *k)
                    .collect();
                ids.iter()
                    .filter_map(|k| st.pending.remove(k))
                    .filter_map(|e| e.stream_id)
                    .collect()
            };
            if !doomed.is_empty() {
                sh.cv.notify_all();
                let r =
                    conn.run(|con| redis::cmd("XDEL").arg(&tasks).arg(&doomed).query::<()>(con));
                if r.is_none() {
                    return;
                }
            }
            next_sweep = Instant::now() + Duration::from_millis(100);
        }
        let read = conn.run(|con| {
            redis::cmd("XREAD")
                .arg("COUNT")
                .arg(1024)
                .arg("BLOCK")
                .arg(100)
                .arg("STREAMS")
                .arg(&results)
                .arg(&last)
                .query::<Option<StreamReadReply>>(con)
        });
        let reply = match read {
            None => return,
            Some(Ok(Some(r))) => r,
            Some(Ok(None)) => continue,
            Some(Err(e)) => {
                eprintln!("multiproc-cluster: reading results failed: {e}");
                std::thread::sleep(Duration::from_millis(100));
                continue;
            }
        };
        let mut seen = Vec::new();
        for k in reply.keys {
            for entry in k.ids {
                last = entry.id.clone();
                seen.push(entry.id.clone());
                let (Some(m), Some(s)) = (field(&entry.map, "m"), field(&entry.map, "s")) else {
                    eprintln!("multiproc-cluster: dropped a malformed result entry {}", entry.id);
                    continue;
                };
                if !wire::verify_result(&sh.key, m, s) {
                    eprintln!(
                        "multiproc-cluster: dropped result entry {}: bad signature (not signed with this executor's authkey)",
                        entry.id
                    );
                    continue;
                }
                let Ok(msg) = postcard::from_bytes::<ResultMsg>(m) else {
                    eprintln!(
                        "multiproc-cluster: dropped an undecodable result entry {}",
                        entry.id
                    );
                    continue;
                };
                let Some(e) = lock(&sh.st).pending.remove(&msg.id) else { continue };
                {
                    let mut ins = lock(&sh.insights);
                    let h = ins.entry(msg.host.clone()).or_insert_with(|| HostInsights {
                        host: msg.host.clone(),
                        ..HostInsights::default()
                    });
                    h.tasks += 1;
                    h.items += e.waiter.count();
                    h.busy += Duration::from_micros(msg.busy_us);
                }
                e.waiter.finish(msg.outcome);
            }
        }
        sh.cv.notify_all();
        if !seen.is_empty() {
            let _ = conn.run(|con| redis::cmd("XDEL").arg(&results).arg(&seen).query::<()>(con));
        }
    }
}
