//! [`Manager`] (a handle on a server: create objects, get proxies), [`ManagerBuilder`] (its
//! options and registered services) and [`Server`] (a server run in the current process).

use crate::authkey::AuthKey;
use crate::client::{Client, ClientConfig};
use crate::containers::{Data, DictProxy, ListProxy, QueueProxy, ValueProxy};
use crate::error::{Error, ErrorKind, Result};
use crate::handle::{unexpected, FromHandle, Handle};
use crate::namespace::Namespace;
use crate::protocol::*;
use crate::server::{ServerConfig, Shared};
use crate::service::{Registry, Service, ServiceSet};
use crate::set::SetProxy;
use crate::spin::DEFAULT_SPIN;
use crate::sync::{
    BarrierProxy, ConditionProxy, EventProxy, LockProxy, RLockProxy, SemaphoreProxy, ServiceProxy,
};
use crate::transport::Listener;
use crate::Address;
use serde::{Deserialize, Deserializer, Serialize, Serializer};
use std::fmt;
use std::marker::PhantomData;
use std::sync::Arc;
use std::time::Duration;

/// Default time a client has to complete the authkey handshake (both sides).
pub const DEFAULT_HANDSHAKE_TIMEOUT: Duration = Duration::from_secs(10);

/// Options of a manager, and its registered services; ends with [`start`](Self::start) (a
/// server process), [`bind`](Self::bind) (a server in this process) or
/// [`connect`](Self::connect) (a client of a running server).
///
/// ```no_run
/// use multiproc_manager::{Manager, Service};
///
/// struct Counter(u64);
/// impl Service for Counter {
///     type Init = u64;
///     type Request = u64;
///     type Response = u64;
///     fn new(start: u64) -> Result<Self, String> { Ok(Counter(start)) }
///     fn call(&mut self, add: u64) -> u64 { self.0 += add; self.0 }
/// }
///
/// let m = Manager::builder().register::<Counter>("counter").start()?;
/// let c = m.service::<Counter>("counter", 10)?;
/// assert_eq!(c.call(5)?, 15);
/// # Ok::<(), multiproc_manager::Error>(())
/// ```
pub struct ManagerBuilder<S = ()> {
    pub(crate) authkey: Option<AuthKey>,
    pub(crate) address: Option<Address>,
    pub(crate) max_frame: usize,
    pub(crate) handshake_timeout: Duration,
    pub(crate) spin: Option<Option<Duration>>,
    pub(crate) names: Vec<String>,
    /// The server's initializer: a checked reference's bytes, or why it has none.
    pub(crate) initializer: Option<std::result::Result<Vec<u8>, String>>,
    pub(crate) _s: PhantomData<fn() -> S>,
}

impl<S> fmt::Debug for ManagerBuilder<S> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        multiproc_arena::debug_fields!(f, self, "ManagerBuilder" {
            address, authkey, max_frame, handshake_timeout, services: self.names
        })
    }
}

impl Default for ManagerBuilder<()> {
    fn default() -> Self {
        ManagerBuilder {
            authkey: None,
            address: None,
            max_frame: DEFAULT_MAX_FRAME,
            handshake_timeout: DEFAULT_HANDSHAKE_TIMEOUT,
            spin: None,
            names: Vec::new(),
            initializer: None,
            _s: PhantomData,
        }
    }
}

/// The default authkey: this process's (Python's `current_process().authkey`).
pub(crate) fn process_authkey() -> AuthKey {
    AuthKey::from(multiproc_spawn::current_process().authkey())
}

impl<S: ServiceSet> ManagerBuilder<S> {
    multiproc_arena::setters! {
        /// The authkey clients must hold (default: the process's
        /// [`current_process().authkey()`](multiproc_spawn::CurrentProcess::authkey), as
        /// Python's managers do: every process of the tree holds it).
        fn authkey(mut self, key: impl Into<AuthKey>) { self.authkey = Some(key.into()) }

        /// Where the server listens: a Unix socket path, or a TCP address (`127.0.0.1:0` picks a
        /// port; see [`Manager::address`]). Default: a Unix socket in a new private directory
        /// (mode 0700).
        fn address(mut self, address: impl Into<Address>) { self.address = Some(address.into()) }

        /// The largest request or response, in bytes (default 64 MiB); larger ones are refused
        /// with [`TooLarge`](ErrorKind::TooLarge) before anything is sent or allocated.
        fn max_frame(mut self, bytes: usize) { self.max_frame = bytes }

        /// How long a connecting client has for the authkey handshake (default 10 s); a client
        /// that stays silent is dropped after it.
        fn handshake_timeout(mut self, timeout: Duration) { self.handshake_timeout = timeout }

        /// How long a client polls for an answer, and a server thread for its client's next
        /// request, before sleeping in the kernel (default 30 µs; zero: block at once). Polling
        /// saves the two wake-ups of a round trip when one client keeps the server busy (on a
        /// 2-CPU VM: `list.append` 17k → 116k ops/s, `dict[key]` 66 → 9 µs); it is adaptive:
        /// a client stops when answers are slow or the server says it serves other clients at
        /// the same time, and the server polls only while it serves one connection (with 4
        /// busy clients, 124k → 142k ops/s). See the crate's `spin` module for the rules.
        fn spin(mut self, spin: Duration) { self.spin = Some((!spin.is_zero()).then_some(spin)) }
    }

    /// A function the server process runs once, before it serves (Python's
    /// `start(initializer)`): a function item or a closure without captures (it is named to
    /// the server process, which may be started by spawn). A panic in it fails
    /// [`start`](Self::start) with its message; a closure that captures is refused there.
    pub fn initializer<F: Fn() + Send + Sync + 'static>(mut self, f: F) -> Self {
        let r = multiproc_spawn::FnRef::<(), ()>::of_adapted(&f, &|f: &F, (): ()| f());
        self.initializer = Some(r.map(|r| r.to_bytes().to_vec()).map_err(|e| e.to_string()));
        self
    }

    /// Registers the service type `T` under `name` (Python's `register(typeid, callable)`).
    pub fn register<T: Service>(self, name: &str) -> ManagerBuilder<(S, T)> {
        let mut names = self.names;
        names.push(name.to_string());
        ManagerBuilder {
            authkey: self.authkey,
            address: self.address,
            max_frame: self.max_frame,
            handshake_timeout: self.handshake_timeout,
            spin: self.spin,
            names,
            initializer: self.initializer,
            _s: PhantomData,
        }
    }

    pub(crate) fn client_config(&self) -> ClientConfig {
        let mut c = ClientConfig {
            max_frame: self.max_frame,
            handshake_timeout: self.handshake_timeout,
            ..ClientConfig::default()
        };
        c.spin = self.spin.unwrap_or(DEFAULT_SPIN);
        c
    }

    pub(crate) fn server_config(&self, authkey: AuthKey) -> ServerConfig {
        ServerConfig {
            authkey,
            max_frame: self.max_frame,
            handshake_timeout: self.handshake_timeout,
            registry: Registry::build::<S>(&self.names),
            spin: self.spin.unwrap_or(DEFAULT_SPIN),
        }
    }

    /// Binds a server in this process (for a dedicated server program); run it with
    /// [`Server::serve`].
    pub fn bind(self) -> Result<Server> {
        let authkey = self.authkey.clone().unwrap_or_else(process_authkey);
        let shared = Shared::new(self.server_config(authkey.clone()));
        let listener = shared.bind(self.address.as_ref())?;
        Ok(Server { address: listener.address().clone(), shared, listener, authkey })
    }

    /// Connects to a running manager (with this builder's frame limit and timeouts).
    pub fn connect(self, address: &Address, authkey: &AuthKey) -> Result<Manager> {
        let client = Client::open(address, authkey, self.client_config())?;
        Ok(Manager { client, owner: None })
    }
}

/// A server running in this process: bind it with [`ManagerBuilder::bind`], print its
/// [`address`](Self::address) and [`authkey`](Self::authkey) for the clients, then
/// [`serve`](Self::serve).
pub struct Server {
    shared: Arc<Shared>,
    listener: Listener,
    address: Address,
    authkey: AuthKey,
}

impl fmt::Debug for Server {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        multiproc_arena::debug_fields!(f, self, "Server" { address } ..)
    }
}

impl Server {
    /// Where clients connect.
    pub fn address(&self) -> &Address {
        &self.address
    }

    /// The key clients must hold.
    pub fn authkey(&self) -> &AuthKey {
        &self.authkey
    }

    /// A handle that stops [`serve`](Self::serve) from another thread.
    pub fn shutdown_handle(&self) -> ShutdownHandle {
        ShutdownHandle(self.shared.clone())
    }

    /// Serves until a client calls [`Manager::shutdown`] or a [`ShutdownHandle`] is used;
    /// then closes every connection and removes the socket file.
    pub fn serve(self) -> Result<()> {
        self.shared.accept_loop(&self.listener);
        self.shared.stop();
        self.shared.wait_idle(Duration::from_secs(2));
        drop(self.listener);
        Ok(())
    }
}

/// Stops a [`Server`] from another thread.
#[derive(Clone)]
pub struct ShutdownHandle(Arc<Shared>);

impl fmt::Debug for ShutdownHandle {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("ShutdownHandle")
    }
}

impl ShutdownHandle {
    /// Stops the server: `serve` returns soon after, every client sees a disconnected error.
    pub fn shutdown(&self) {
        self.0.stop();
    }
}

/// What a manager owner must do at the end (stop the server process it started).
pub(crate) trait Owned: Send + Sync {
    fn shutdown(&self, client: &Client) -> Result<()>;

    /// The server process's exit code, once it has ended.
    fn exit_code(&self) -> Option<i32>;
}

/// A handle on a manager server: creates managed objects and returns their proxies.
///
/// [`Manager::start`] runs a server process owned by this handle (it stops when the last
/// clone of the handle is dropped, or at [`shutdown`](Self::shutdown)); [`Manager::connect`]
/// joins a server started elsewhere. Proxies do not keep the server running: once it stops,
/// their calls fail with [`Disconnected`](ErrorKind::Disconnected).
///
/// A `Manager` can be passed to another process (it serialises as its address and authkey;
/// the receiver connects, without owning the server).
#[derive(Clone)]
pub struct Manager {
    pub(crate) client: Arc<Client>,
    pub(crate) owner: Option<Arc<dyn Owned>>,
}

impl fmt::Debug for Manager {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        multiproc_arena::debug_fields!(f, self, "Manager" {
            address: self.client.address.to_string(),
            server_pid: self.client.server_pid,
            owner: self.owner.is_some()
        })
    }
}

impl Manager {
    /// The options of a manager (authkey, address, services, limits).
    pub fn builder() -> ManagerBuilder {
        ManagerBuilder::default()
    }

    /// Connects to the manager at `address` holding `authkey` (from any process: it needs to
    /// share nothing else with the server). A wrong key is an
    /// [`Authentication`](ErrorKind::Authentication) error.
    pub fn connect(address: &Address, authkey: &AuthKey) -> Result<Manager> {
        Manager::builder().connect(address, authkey)
    }

    /// Where the server listens.
    pub fn address(&self) -> &Address {
        &self.client.address
    }

    /// The key that admits a client.
    pub fn authkey(&self) -> &AuthKey {
        &self.client.authkey
    }

    /// The server's process id.
    pub fn server_pid(&self) -> u32 {
        self.client.server_pid
    }

    /// Whether this handle started (and will stop) the server.
    pub fn is_owner(&self) -> bool {
        self.owner.is_some()
    }

    /// The server process's exit code once it has ended (Python's
    /// `manager._process.exitcode`): its exit status (0 after a normal
    /// [`shutdown`](Self::shutdown)), or the negated number of the signal that killed it
    /// (`-9` after a `SIGKILL`). `None` while the server runs, and always `None` on a handle
    /// that did not start the server ([`connect`](Self::connect)ed, deserialised, or in a
    /// forked child): only the starting process can see how it ended. Does not block.
    pub fn server_exit_code(&self) -> Option<i32> {
        self.owner.as_ref().and_then(|o| o.exit_code())
    }

    /// This process's session (a forked child opens its own).
    fn client(&self) -> Result<Arc<Client>> {
        if self.client.pid == std::process::id() {
            Ok(self.client.clone())
        } else {
            Client::for_process(&self.client.address, &self.client.authkey)
        }
    }

    /// A new object made from `what`, as its proxy `P`.
    fn create<P: FromHandle>(&self, what: Create) -> Result<P> {
        self.make(None, what)
    }

    /// The object registered under `name`, made from `what` if there is none.
    fn named<P: FromHandle>(&self, name: &str, what: Create) -> Result<P> {
        self.make(Some(name), what)
    }

    fn make<P: FromHandle>(&self, name: Option<&str>, what: Create) -> Result<P> {
        let c = self.client()?;
        let kind = what.kind();
        let req = match name {
            None => Request::Create(what),
            Some(name) => Request::Named { name: name.to_string(), create: what },
        };
        match c.call(&req)? {
            Reply::Created(id) => Ok(P::from_handle(Handle::new(c, id, kind))),
            other => Err(unexpected(&other)),
        }
    }

    fn enc<T: serde::Serialize + ?Sized>(&self, v: &T) -> Result<Stored> {
        crate::codec::encode(&*self.client()?, v)
    }

    /// A new empty list.
    pub fn list<T: Data>(&self) -> Result<ListProxy<T>> {
        self.create(Create::List(Vec::new()))
    }

    /// A new list holding `items`.
    ///
    /// Proxies among the items are kept alive until the server has counted the list's
    /// reference to them, so a proxy passed here as its object's only handle is fine.
    pub fn list_from<T: Data>(&self, items: impl IntoIterator<Item = T>) -> Result<ListProxy<T>> {
        let items: Vec<T> = items.into_iter().collect();
        let vs = items.iter().map(|v| self.enc(v)).collect::<Result<Vec<_>>>()?;
        let list = self.create(Create::List(vs));
        // Only now: a proxy among the items was the last handle of its object.
        drop(items);
        list
    }

    /// A new empty dict.
    pub fn dict<K: Data, V: Data>(&self) -> Result<DictProxy<K, V>> {
        self.create(Create::Dict(Vec::new()))
    }

    /// A new dict holding `pairs` (proxies among the values are kept alive until the server
    /// has counted the dict's reference to them, as in [`list_from`](Self::list_from)).
    pub fn dict_from<K: Data, V: Data>(
        &self,
        pairs: impl IntoIterator<Item = (K, V)>,
    ) -> Result<DictProxy<K, V>> {
        let c = self.client()?;
        let pairs: Vec<(K, V)> = pairs.into_iter().collect();
        let kvs = pairs
            .iter()
            .map(|(k, v)| Ok((crate::codec::encode_key(&c, k)?, crate::codec::encode(&c, v)?)))
            .collect::<Result<Vec<_>>>()?;
        let dict = self.create(Create::Dict(kvs));
        drop(pairs);
        dict
    }

    /// A new empty set (Python 3.14's `manager.set()`).
    pub fn set<T: Data>(&self) -> Result<SetProxy<T>> {
        self.create(Create::Set(Vec::new()))
    }

    /// A new set holding `items` (duplicates count once). Values may not hold proxies
    /// ([`InvalidInput`](ErrorKind::InvalidInput)).
    pub fn set_from<T: Data>(&self, items: impl IntoIterator<Item = T>) -> Result<SetProxy<T>> {
        let c = self.client()?;
        let ks = items
            .into_iter()
            .map(|v| crate::codec::encode_key(&c, &v))
            .collect::<Result<Vec<_>>>()?;
        self.create(Create::Set(ks))
    }

    /// A new namespace (named fields).
    pub fn namespace(&self) -> Result<Namespace> {
        self.create(Create::Namespace)
    }

    /// A new single value.
    pub fn value<T: Data>(&self, value: T) -> Result<ValueProxy<T>> {
        let v = self.enc(&value)?;
        self.create(Create::Value(v))
    }

    /// A new unbounded queue.
    pub fn queue<T: Data>(&self) -> Result<QueueProxy<T>> {
        self.bounded_queue(0)
    }

    /// A new queue holding at most `maxsize` values (0: unbounded).
    pub fn bounded_queue<T: Data>(&self, maxsize: usize) -> Result<QueueProxy<T>> {
        self.create(Create::Queue { maxsize: maxsize as u64 })
    }

    /// A new lock.
    pub fn lock(&self) -> Result<LockProxy> {
        self.create(Create::Lock)
    }

    /// A new recursive lock.
    pub fn rlock(&self) -> Result<RLockProxy> {
        self.create(Create::RLock)
    }

    /// A new semaphore with `value` permits (releases beyond it are allowed).
    pub fn semaphore(&self, value: usize) -> Result<SemaphoreProxy> {
        self.create(Create::Semaphore { value: value as u64, bounded: false })
    }

    /// A new bounded semaphore: releasing above `value` is an error.
    pub fn bounded_semaphore(&self, value: usize) -> Result<SemaphoreProxy> {
        self.create(Create::Semaphore { value: value as u64, bounded: true })
    }

    /// A new condition variable (with its own recursive lock).
    pub fn condition(&self) -> Result<ConditionProxy> {
        self.create(Create::Condition)
    }

    /// A new event (unset).
    pub fn event(&self) -> Result<EventProxy> {
        self.create(Create::Event)
    }

    /// A new barrier for `parties` parties (no default timeout; see
    /// [`barrier_builder`](Self::barrier_builder) for one).
    pub fn barrier(&self, parties: usize) -> Result<BarrierProxy> {
        self.barrier_builder(parties).build()
    }

    /// A builder for a barrier with a default timeout, in the shape of the local barrier's
    /// (`multiproc_ipc_lock::Barrier::builder(n).timeout(d).build()`):
    /// `manager.barrier_builder(n).timeout(d).build()`.
    pub fn barrier_builder(&self, parties: usize) -> BarrierBuilder<'_> {
        BarrierBuilder { manager: self, parties, timeout: None }
    }

    /// A new barrier whose waits time out (breaking it) after `timeout` by default.
    #[deprecated(note = "use `barrier_builder(parties).timeout(timeout).build()`, the shape of \
                         the local `Barrier::builder`")]
    pub fn barrier_with_timeout(&self, parties: usize, timeout: Duration) -> Result<BarrierProxy> {
        self.barrier_builder(parties).timeout(timeout).build()
    }

    /// A new instance of the service registered as `name`, created in the server from
    /// `init`. The server must have been built with `T` registered under `name`
    /// ([`NoSuchService`](ErrorKind::NoSuchService) otherwise).
    pub fn service<T: Service>(&self, name: &str, init: T::Init) -> Result<ServiceProxy<T>> {
        let init = postcard::to_allocvec(&init).map_err(Error::codec)?;
        self.create(Create::Service { name: name.to_string(), init })
    }

    /// The list registered on the server under `name`, made empty and registered if there is
    /// none: how processes that share no parent reach one list (Python's
    /// `BaseManager.register` with a shared object, then `get_list()` after `connect`).
    /// Named objects live as long as the server. A name that holds another kind of object is
    /// [`WrongKind`](ErrorKind::WrongKind); the item type is not recorded (a value that
    /// does not decode as `T` is a [`Codec`](ErrorKind::Codec) error at use).
    pub fn named_list<T: Data>(&self, name: &str) -> Result<ListProxy<T>> {
        self.named(name, Create::List(Vec::new()))
    }

    /// The dict registered under `name` (see [`named_list`](Self::named_list)).
    pub fn named_dict<K: Data, V: Data>(&self, name: &str) -> Result<DictProxy<K, V>> {
        self.named(name, Create::Dict(Vec::new()))
    }

    /// The namespace registered under `name` (see [`named_list`](Self::named_list)).
    pub fn named_namespace(&self, name: &str) -> Result<Namespace> {
        self.named(name, Create::Namespace)
    }

    /// The value registered under `name`, holding `init` if it is made now (see
    /// [`named_list`](Self::named_list)).
    pub fn named_value<T: Data>(&self, name: &str, init: T) -> Result<ValueProxy<T>> {
        let v = self.enc(&init)?;
        self.named(name, Create::Value(v))
    }

    /// The unbounded queue registered under `name` (see [`named_list`](Self::named_list)).
    pub fn named_queue<T: Data>(&self, name: &str) -> Result<QueueProxy<T>> {
        self.named(name, Create::Queue { maxsize: 0 })
    }

    /// The lock registered under `name` (see [`named_list`](Self::named_list)).
    pub fn named_lock(&self, name: &str) -> Result<LockProxy> {
        self.named(name, Create::Lock)
    }

    /// The event registered under `name` (see [`named_list`](Self::named_list)).
    pub fn named_event(&self, name: &str) -> Result<EventProxy> {
        self.named(name, Create::Event)
    }

    /// The instance of service `service` registered under `name`, made from `init` if there
    /// is none (see [`named_list`](Self::named_list)).
    pub fn named_service<T: Service>(
        &self,
        name: &str,
        service: &str,
        init: T::Init,
    ) -> Result<ServiceProxy<T>> {
        let init = postcard::to_allocvec(&init).map_err(Error::codec)?;
        self.named(name, Create::Service { name: service.to_string(), init })
    }

    /// How many objects the server holds (Python's `_number_of_objects`).
    pub fn num_objects(&self) -> Result<usize> {
        match self.client()?.call(&Request::Info)? {
            Reply::Info(i) => Ok(i.objects as usize),
            other => Err(unexpected(&other)),
        }
    }

    /// Stops the server. The owner waits for the server process to end (killing it if it
    /// does not within a few seconds); any other handle just asks the server to stop.
    /// Every proxy then fails with [`Disconnected`](ErrorKind::Disconnected).
    pub fn shutdown(&self) -> Result<()> {
        match &self.owner {
            Some(o) => o.shutdown(&self.client),
            None => match self.client()?.call(&Request::Shutdown) {
                Ok(_) => Ok(()),
                Err(e) if e.kind() == ErrorKind::Disconnected => Ok(()),
                Err(e) => Err(e),
            },
        }
    }
}

#[derive(Serialize, Deserialize)]
struct ManagerWire {
    address: Address,
    authkey: AuthKey,
}

impl Serialize for Manager {
    fn serialize<S: Serializer>(&self, s: S) -> std::result::Result<S::Ok, S::Error> {
        ManagerWire { address: self.client.address.clone(), authkey: self.client.authkey.clone() }
            .serialize(s)
    }
}

impl<'de> Deserialize<'de> for Manager {
    fn deserialize<D: Deserializer<'de>>(d: D) -> std::result::Result<Self, D::Error> {
        let w = ManagerWire::deserialize(d)?;
        let client =
            Client::for_process(&w.address, &w.authkey).map_err(serde::de::Error::custom)?;
        Ok(Manager { client, owner: None })
    }
}

/// Builds a manager barrier: [`Manager::barrier_builder`]`(n).timeout(d).build()`, the shape
/// of the local barrier's builder (`multiproc_ipc_lock::BarrierBuilder`).
///
/// The local builder's `action` has no counterpart here: the server cannot run a closure of
/// the client's (Python's manager pickles the callable; run the action in the party whose
/// `wait` returns 0 instead).
///
/// ```
/// use multiproc_manager::Manager;
/// use std::time::Duration;
///
/// let m = Manager::start().unwrap();
/// let b = m.barrier_builder(2).timeout(Duration::from_millis(20)).build().unwrap();
/// // Alone, the wait times out after the default timeout and breaks the barrier.
/// assert!(b.wait().is_err());
/// assert!(b.is_broken().unwrap());
/// ```
#[must_use = "a builder does nothing until `build`"]
pub struct BarrierBuilder<'m> {
    manager: &'m Manager,
    parties: usize,
    timeout: Option<Duration>,
}

impl BarrierBuilder<'_> {
    /// The default timeout of [`BarrierProxy::wait`]: a wait that lasts longer fails and
    /// breaks the barrier, as a [`wait_timeout`](BarrierProxy::wait_timeout) does.
    pub fn timeout(mut self, timeout: Duration) -> Self {
        self.timeout = Some(timeout);
        self
    }

    /// Creates the barrier on the server. Zero parties is
    /// [`InvalidInput`](ErrorKind::InvalidInput).
    pub fn build(self) -> Result<BarrierProxy> {
        let timeout = wait_from(self.timeout);
        self.manager.create(Create::Barrier { parties: self.parties as u64, timeout })
    }
}

impl fmt::Debug for BarrierBuilder<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("BarrierBuilder")
            .field("parties", &self.parties)
            .field("timeout", &self.timeout)
            .finish()
    }
}
