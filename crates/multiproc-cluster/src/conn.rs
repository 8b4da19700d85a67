//! A Redis connection that comes back: every call is retried over a new connection, with
//! backoff, while Redis is unreachable, restarting or loading its data set.

use redis::{Connection, RedisError, RedisResult};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::Duration;

const BACKOFF_MIN: Duration = Duration::from_millis(20);
const BACKOFF_MAX: Duration = Duration::from_secs(2);

/// Whether `e` means "the connection or the server is not there now": worth a reconnect.
pub(crate) fn transient(e: &RedisError) -> bool {
    use redis::ErrorKind as K;
    e.is_io_error()
        || e.is_connection_dropped()
        || e.is_connection_refusal()
        || e.is_timeout()
        || matches!(e.kind(), K::BusyLoadingError | K::TryAgain | K::MasterDown | K::ReadOnly)
}

/// One connection, re-opened on demand.
pub(crate) struct Conn {
    client: redis::Client,
    con: Option<Connection>,
    read_timeout: Option<Duration>,
    stop: Arc<AtomicBool>,
    /// Connections opened so far (a worker holds back its reaper after a reconnect).
    pub(crate) generation: u64,
    /// The last error seen while reconnecting, for logs.
    pub(crate) last_error: Option<String>,
}

impl Conn {
    pub(crate) fn new(
        client: redis::Client,
        read_timeout: Option<Duration>,
        stop: Arc<AtomicBool>,
    ) -> Self {
        Conn { client, con: None, read_timeout, stop, generation: 0, last_error: None }
    }

    fn open(&mut self) -> RedisResult<()> {
        let con = self.client.get_connection_with_timeout(Duration::from_secs(2))?;
        con.set_read_timeout(self.read_timeout)?;
        con.set_write_timeout(Some(Duration::from_secs(5)))?;
        self.con = Some(con);
        self.generation += 1;
        Ok(())
    }

    /// Runs `f` until it succeeds or fails with a non-transient error; `None` once the
    /// stop flag is set.
    pub(crate) fn run<T>(
        &mut self,
        mut f: impl FnMut(&mut Connection) -> RedisResult<T>,
    ) -> Option<RedisResult<T>> {
        let mut backoff = BACKOFF_MIN;
        loop {
            if self.con.is_none() {
                if let Err(e) = self.open() {
                    if !transient(&e) && !matches!(e.kind(), redis::ErrorKind::IoError) {
                        return Some(Err(e));
                    }
                    self.last_error = Some(e.to_string());
                    if !self.pause(&mut backoff) {
                        return None;
                    }
                    continue;
                }
            }
            let con = self.con.as_mut().expect("just opened");
            match f(con) {
                Ok(v) => return Some(Ok(v)),
                Err(e) if transient(&e) => {
                    self.last_error = Some(e.to_string());
                    self.con = None;
                    if !self.pause(&mut backoff) {
                        return None;
                    }
                }
                Err(e) => return Some(Err(e)),
            }
        }
    }

    /// Whether `key` exists; `None` if Redis could not say (stopped, or an error).
    pub(crate) fn exists(&mut self, key: &str) -> Option<bool> {
        self.run(|con| redis::cmd("EXISTS").arg(key).query::<bool>(con)).and_then(|r| r.ok())
    }

    /// Sleeps the backoff (in slices, watching the stop flag); false if stopped.
    fn pause(&self, backoff: &mut Duration) -> bool {
        let until = std::time::Instant::now() + *backoff;
        *backoff = (*backoff * 2).min(BACKOFF_MAX);
        while std::time::Instant::now() < until {
            if self.stop.load(Ordering::SeqCst) {
                return false;
            }
            std::thread::sleep(Duration::from_millis(10));
        }
        !self.stop.load(Ordering::SeqCst)
    }
}

/// Creates the task stream and the workers' group if missing (from the start of the
/// stream, so tasks written before any worker came are not skipped).
pub(crate) fn ensure_group(con: &mut Connection, stream: &str) -> RedisResult<()> {
    let r: RedisResult<()> = redis::cmd("XGROUP")
        .arg("CREATE")
        .arg(stream)
        .arg(crate::wire::GROUP)
        .arg("0")
        .arg("MKSTREAM")
        .query(con);
    match r {
        Err(e) if e.code() == Some("BUSYGROUP") => Ok(()),
        other => other,
    }
}
