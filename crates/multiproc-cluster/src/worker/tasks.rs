//! Taking tasks: reading the stream, checking and running each entry, writing the results,
//! and the heartbeat.

use super::{beat, Done, Worker};
use crate::common::{field, lock};
use crate::conn::{ensure_group, Conn};
use crate::wire::{self, Outcome, ResultMsg, TaskMsg, GROUP};
use multiproc_pool::remote::RemoteFn;
use multiproc_pool::ErrorKind as TaskErrorKind;
use redis::streams::{StreamId, StreamReadReply};
use std::collections::HashMap;
use std::sync::mpsc;
use std::sync::Arc;
use std::time::{Duration, Instant};

/// Whether a client's heartbeat exists (cached for a second).
pub(super) struct Clients {
    pub(super) seen: HashMap<String, (bool, Instant)>,
}

impl Clients {
    pub(super) fn alive(&mut self, w: &Worker, conn: &mut Conn, client: &str) -> bool {
        if let Some((alive, at)) = self.seen.get(client) {
            if at.elapsed() < Duration::from_secs(1) {
                return *alive;
            }
        }
        let alive = conn.exists(&w.keys.client(client)).unwrap_or(true);
        if self.seen.len() > 10_000 {
            self.seen.clear();
        }
        self.seen.insert(client.to_string(), (alive, Instant::now()));
        alive
    }
}

/// Takes one entry: checks it, then runs it, answers it or drops it. `died` is set when
/// the entry was claimed from a dead host after `runs` deliveries.
pub(super) fn handle(
    w: &Arc<Worker>,
    conn: &mut Conn,
    clients: &mut Clients,
    tx: &mpsc::Sender<Done>,
    e: &StreamId,
    died: Option<(&str, usize)>,
) {
    lock(&w.held).insert(e.id.clone());
    let (Some(m), Some(s)) = (field(&e.map, "m"), field(&e.map, "s")) else {
        w.log_rejected(conn, &e.id, "unsigned or malformed entry (fields m and s missing)");
        w.drop_entry(conn, &e.id);
        return;
    };
    if !wire::verify_task(&w.key, m, s) {
        w.log_rejected(conn, &e.id, "bad signature: not signed with this cluster's authkey");
        w.drop_entry(conn, &e.id);
        return;
    }
    let msg: TaskMsg = match postcard::from_bytes(m) {
        Ok(t) => t,
        Err(err) => {
            w.log_rejected(conn, &e.id, &format!("signed but undecodable ({err})"));
            w.drop_entry(conn, &e.id);
            return;
        }
    };
    let answer = |outcome: Outcome| Done {
        entry: e.id.clone(),
        client: msg.client.clone(),
        ttl_ms: msg.ttl_ms,
        msg: ResultMsg { id: msg.id, host: w.name.clone(), busy_us: 0, outcome },
        ran: false,
    };
    if !clients.alive(w, conn, &msg.client) {
        eprintln!(
            "multiproc-cluster worker {}: dropped task {} of client {}: the client is gone",
            w.name, msg.id, msg.client
        );
        w.drop_entry(conn, &e.id);
        return;
    }
    if let Some((dead, runs)) = died {
        if runs > msg.retries as usize {
            let detail = format!(
                "worker host {dead} died while running the task (run {runs} of {})",
                msg.retries as usize + 1
            );
            let _ = tx.send(answer(wire::failure(TaskErrorKind::WorkerDied, detail)));
            return;
        }
    }
    let func = match RemoteFn::unseal(&msg.func, &w.key) {
        Ok(f) => f,
        Err(err) => {
            w.log_rejected(conn, &e.id, &err.to_string());
            let _ = tx.send(answer(wire::failed(&err, &w.name)));
            return;
        }
    };
    let fut = w.pool(msg.timeout_ms).and_then(|p| p.submit_remote(func, msg.payload, msg.count));
    let fut = match fut {
        Ok(f) => f,
        Err(err) => {
            let _ = tx.send(answer(wire::failed(&err, &w.name)));
            return;
        }
    };
    *lock(&w.in_flight) += 1;
    let started = Instant::now();
    let tx = tx.clone();
    let host = w.name.clone();
    let (entry, client, ttl_ms, id) = (e.id.clone(), msg.client.clone(), msg.ttl_ms, msg.id);
    fut.add_done_callback(move |r| {
        let outcome = match r {
            Ok(data) => Outcome::Items(data.clone()),
            Err(err) => wire::failed(err, &host),
        };
        let busy_us = started.elapsed().as_micros() as u64;
        let msg = ResultMsg { id, host, busy_us, outcome };
        let _ = tx.send(Done { entry, client, ttl_ms, msg, ran: true });
    });
    lock(&w.running).push(fut);
    w.running_cv.notify_all();
}

/// Waits on the running tasks' futures, so the local pool collects their results on this
/// thread the moment they exist (the done-callbacks then hand them to the reply thread);
/// otherwise the pool's own background thread would, after a grace period meant for a
/// caller about to wait.
pub(super) fn drive_loop(w: Arc<Worker>) {
    loop {
        let futs = {
            let mut r = lock(&w.running);
            while r.is_empty() {
                r = w.running_cv.wait(r).unwrap_or_else(|p| p.into_inner());
            }
            std::mem::take(&mut *r)
        };
        let waited = multiproc_pool::wait(
            futs,
            multiproc_pool::ReturnWhen::FirstCompleted,
            Some(Duration::from_millis(5)),
        );
        drop(waited.done);
        lock(&w.running).extend(waited.not_done);
    }
}

/// The state of the thread that takes tasks: its connection, the clients seen, and the
/// way to the reply thread.
pub(super) struct Reader {
    pub(super) w: Arc<Worker>,
    pub(super) conn: Conn,
    pub(super) clients: Clients,
    pub(super) tx: mpsc::Sender<Done>,
}

pub(super) fn read_loop(w: &Arc<Worker>, tx: mpsc::Sender<Done>) {
    let conn = Conn::new(w.redis.clone(), Some(Duration::from_secs(5)), w.stop.clone());
    let clients = Clients { seen: HashMap::new() };
    let mut rd = Reader { w: w.clone(), conn, clients, tx };
    let tasks = w.keys.tasks();
    let capacity = w.prefetch;
    let mut next_reap = Instant::now() + w.heartbeat / 2;
    let mut gen_seen = 0;
    loop {
        if rd.conn.generation != gen_seen {
            // After a reconnect (Redis restarted?) every host needs time to renew its
            // heartbeat before any looks dead; and entries Redis handed to this host while
            // the answer was lost are taken up now.
            if gen_seen != 0 {
                rd.recover_own();
            }
            gen_seen = rd.conn.generation;
            next_reap = Instant::now() + w.heartbeat;
        }
        if Instant::now() >= next_reap {
            rd.reap();
            next_reap = Instant::now() + w.heartbeat / 2;
        }
        let free = {
            let mut n = lock(&w.in_flight);
            let deadline = Instant::now() + Duration::from_millis(200);
            while *n >= capacity && Instant::now() < deadline {
                n = w
                    .in_flight_cv
                    .wait_timeout(n, Duration::from_millis(20))
                    .unwrap_or_else(|p| p.into_inner())
                    .0;
            }
            capacity.saturating_sub(*n)
        };
        if free == 0 {
            continue;
        }
        let r = rd.conn.run(|con| {
            redis::cmd("XREADGROUP")
                .arg("GROUP")
                .arg(GROUP)
                .arg(&w.name)
                .arg("COUNT")
                .arg(free)
                .arg("BLOCK")
                .arg(200)
                .arg("STREAMS")
                .arg(&tasks)
                .arg(">")
                .query::<Option<StreamReadReply>>(con)
        });
        match r {
            None => return,
            Some(Ok(Some(reply))) => {
                for k in reply.keys {
                    for e in &k.ids {
                        let Reader { w, conn, clients, tx } = &mut rd;
                        handle(w, conn, clients, tx, e, None);
                    }
                }
            }
            Some(Ok(None)) => {}
            Some(Err(e)) if e.code() == Some("NOGROUP") => {
                // Redis restarted without its data: the group is made again.
                let _ = rd.conn.run(|con| ensure_group(con, &tasks));
            }
            Some(Err(e)) => {
                eprintln!("multiproc-cluster worker {}: reading tasks failed: {e}", w.name);
                std::thread::sleep(Duration::from_millis(200));
            }
        }
    }
}

pub(super) fn heartbeat_loop(w: Arc<Worker>) {
    let mut conn = Conn::new(w.redis.clone(), Some(Duration::from_secs(2)), w.stop.clone());
    loop {
        if conn.run(|con| beat(con, &w.keys, &w.name, w.heartbeat)).is_none() {
            return;
        }
        std::thread::sleep(w.heartbeat / 4);
    }
}

/// Writes results: the result entry, its stream's expiry, and the task's ack and removal
/// in one transaction, so a task is answered and acknowledged together or not at all.
pub(super) fn reply_loop((w, rx): (Arc<Worker>, mpsc::Receiver<Done>)) {
    let mut conn = Conn::new(w.redis.clone(), Some(Duration::from_secs(5)), w.stop.clone());
    let tasks = w.keys.tasks();
    while let Ok(first) = rx.recv() {
        let mut batch = vec![first];
        while batch.len() < 256 {
            match rx.try_recv() {
                Ok(d) => batch.push(d),
                Err(_) => break,
            }
        }
        let encoded: Vec<(Vec<u8>, Vec<u8>)> = batch
            .iter()
            .map(|d| {
                let m = postcard::to_stdvec(&d.msg).expect("a result message serialises");
                let s = wire::sign_result(&w.key, &m);
                (m, s)
            })
            .collect();
        let r = conn.run(|con| {
            let mut p = redis::pipe();
            p.atomic();
            for (d, (m, s)) in batch.iter().zip(&encoded) {
                let results = w.keys.results(&d.client);
                p.cmd("XADD")
                    .arg(&results)
                    .arg("MAXLEN")
                    .arg("~")
                    .arg(1_000_000)
                    .arg("*")
                    .arg("m")
                    .arg(&m[..])
                    .arg("s")
                    .arg(&s[..])
                    .ignore();
                p.cmd("PEXPIRE").arg(&results).arg(d.ttl_ms.max(1)).ignore();
                p.cmd("XACK").arg(&tasks).arg(GROUP).arg(&d.entry).ignore();
                p.cmd("XDEL").arg(&tasks).arg(&d.entry).ignore();
            }
            p.query::<()>(con)
        });
        match r {
            Some(Ok(())) => {
                let mut held = lock(&w.held);
                for d in &batch {
                    held.remove(&d.entry);
                }
            }
            Some(Err(e)) => {
                eprintln!("multiproc-cluster worker {}: writing results failed: {e}", w.name)
            }
            None => {}
        }
        let ran = batch.iter().filter(|d| d.ran).count();
        if ran > 0 {
            let mut n = lock(&w.in_flight);
            *n = n.saturating_sub(ran);
            w.in_flight_cv.notify_all();
        }
    }
}
