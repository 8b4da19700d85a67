//! Custom services: user types that live in the server and are called through a typed proxy
//! (Python's `BaseManager.register`).

use crate::error::ErrorKind;
use crate::protocol::Fault;
use serde::de::DeserializeOwned;
use serde::Serialize;
use std::collections::HashMap;
use std::fmt;
use std::panic::{catch_unwind, AssertUnwindSafe};

/// A type that lives in the manager server and answers typed requests.
///
/// Register it by name on the builder ([`ManagerBuilder::register`](crate::ManagerBuilder::register));
/// create instances with [`Manager::service`](crate::Manager::service) and call them through
/// the returned [`ServiceProxy`](crate::ServiceProxy). Calls to one instance are serialised
/// (one at a time); different instances run in parallel. A `call` that panics comes back to
/// the caller as an error of kind [`ServiceFailed`](ErrorKind::ServiceFailed) with the panic
/// message, and the instance keeps serving. For typed errors, make `Response` a `Result`.
///
/// ```
/// use multiproc_manager::Service;
///
/// struct Counter(i64);
///
/// impl Service for Counter {
///     type Init = i64;
///     type Request = i64;
///     type Response = i64;
///     fn new(start: i64) -> Result<Self, String> {
///         Ok(Counter(start))
///     }
///     fn call(&mut self, add: i64) -> i64 {
///         self.0 += add;
///         self.0
///     }
/// }
/// ```
pub trait Service: Send + 'static {
    /// What creating an instance takes.
    type Init: Serialize + DeserializeOwned;
    /// What a call sends.
    type Request: Serialize + DeserializeOwned;
    /// What a call answers.
    type Response: Serialize + DeserializeOwned;

    /// Creates an instance in the server; an `Err` comes back to the creator as an error of
    /// kind [`ServiceFailed`](ErrorKind::ServiceFailed).
    fn new(init: Self::Init) -> Result<Self, String>
    where
        Self: Sized;

    /// Answers one request.
    fn call(&mut self, request: Self::Request) -> Self::Response;
}

/// A compile-time list of registered services: `()` and `(S, T)` for a list `S` and one more
/// service `T`. Built by [`ManagerBuilder::register`](crate::ManagerBuilder::register); it
/// lets a spawned server process (a fresh program image) know the service types.
pub trait ServiceSet: 'static {
    /// Adds this list's services to `registry`, taking their names from `names` in order.
    #[doc(hidden)]
    fn add_to(registry: &mut Registry, names: &mut std::slice::Iter<'_, String>);
}

impl ServiceSet for () {
    fn add_to(_: &mut Registry, _: &mut std::slice::Iter<'_, String>) {}
}

impl<S: ServiceSet, T: Service> ServiceSet for (S, T) {
    fn add_to(registry: &mut Registry, names: &mut std::slice::Iter<'_, String>) {
        S::add_to(registry, names);
        if let Some(name) = names.next() {
            registry.insert(name.clone(), create::<T>);
        }
    }
}

/// A type-erased service instance.
pub(crate) trait ErasedService: Send {
    fn call(&mut self, request: &[u8]) -> Result<Vec<u8>, Fault>;
}

struct Erased<S: Service>(S);

impl<S: Service> ErasedService for Erased<S> {
    fn call(&mut self, request: &[u8]) -> Result<Vec<u8>, Fault> {
        let req: S::Request = postcard::from_bytes(request).map_err(|e| {
            Fault::new(ErrorKind::Codec, format!("service request does not decode: {e}"))
        })?;
        let inner = &mut self.0;
        let resp = catch_unwind(AssertUnwindSafe(move || inner.call(req)))
            .map_err(|p| Fault::new(ErrorKind::ServiceFailed, panic_message(&*p)))?;
        postcard::to_allocvec(&resp).map_err(|e| {
            Fault::new(ErrorKind::Codec, format!("service response does not encode: {e}"))
        })
    }
}

type Factory = fn(&[u8]) -> Result<Box<dyn ErasedService>, Fault>;

fn create<S: Service>(init: &[u8]) -> Result<Box<dyn ErasedService>, Fault> {
    let init: S::Init = postcard::from_bytes(init)
        .map_err(|e| Fault::new(ErrorKind::Codec, format!("service init does not decode: {e}")))?;
    match catch_unwind(AssertUnwindSafe(move || S::new(init))) {
        Ok(Ok(s)) => Ok(Box::new(Erased(s))),
        Ok(Err(msg)) => Err(Fault::new(ErrorKind::ServiceFailed, msg)),
        Err(p) => Err(Fault::new(ErrorKind::ServiceFailed, panic_message(&*p))),
    }
}

pub(crate) fn panic_message(p: &(dyn std::any::Any + Send)) -> String {
    if let Some(s) = p.downcast_ref::<&str>() {
        format!("panicked: {s}")
    } else if let Some(s) = p.downcast_ref::<String>() {
        format!("panicked: {s}")
    } else {
        "panicked".to_string()
    }
}

/// The services a server knows, by name.
#[doc(hidden)]
#[derive(Default)]
pub struct Registry {
    factories: HashMap<String, Factory>,
}

impl Registry {
    fn insert(&mut self, name: String, f: Factory) {
        self.factories.insert(name, f);
    }

    pub(crate) fn build<S: ServiceSet>(names: &[String]) -> Registry {
        let mut r = Registry::default();
        S::add_to(&mut r, &mut names.iter());
        r
    }

    pub(crate) fn create(&self, name: &str, init: &[u8]) -> Result<Box<dyn ErasedService>, Fault> {
        match self.factories.get(name) {
            Some(f) => f(init),
            None => Err(Fault::new(
                ErrorKind::NoSuchService,
                format!("no service named {name:?} is registered on this manager"),
            )),
        }
    }
}

impl fmt::Debug for Registry {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_set().entries(self.factories.keys()).finish()
    }
}
