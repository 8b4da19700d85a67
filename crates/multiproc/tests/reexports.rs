//! Every re-export of the umbrella resolves to its member crate's item.
#![allow(unused_imports)]

use multiproc::{
    active_children, as_completed, cpu_count, current_process, get_start_method, parent_process,
    set_start_method, Address, Arena, Array, Barrier, BoundedSemaphore, Client, Condition,
    Connection, Context, Event, Executor, Fd, Future, JoinError, JoinHandle, JoinableQueue,
    Listener, Lock, Manager, Mutex, Pipe, Pool, Process, ProcessPoolExecutor, Queue, RLock,
    ReturnWhen, Run, RwLock, Semaphore, Shared, SharedMemory, ShmSafe, SimpleQueue, StartMethod,
    ThreadPoolExecutor, Value, Waitable,
};

#[test]
fn modules_reach_each_member_crate() {
    fn same<T: 'static, U: 'static>() -> bool {
        std::any::TypeId::of::<T>() == std::any::TypeId::of::<U>()
    }
    assert!(same::<multiproc::arena::Arena, multiproc_arena::Arena>());
    assert!(same::<multiproc::lock::Lock, multiproc_ipc_lock::Lock>());
    assert!(same::<multiproc::queue::Queue<u8>, multiproc_ipc_queue::Queue<u8>>());
    assert!(same::<multiproc::pipe::Connection, multiproc_ipc_pipe::Connection>());
    assert!(same::<multiproc::spawn::StartMethod, multiproc_spawn::StartMethod>());
    assert!(same::<multiproc::manager::Manager, multiproc_manager::Manager>());
    assert!(same::<multiproc::pool::Pool, multiproc_pool::Pool>());
    assert!(same::<Value<u64>, Shared<u64>>());
    let _ = multiproc::pipe::wait;
    let none: Vec<Future<u8>> = Vec::new();
    let waited = multiproc::pool::wait(none, ReturnWhen::AllCompleted, None);
    let _ = format!("{waited:?}");
}

#[test]
fn the_arena_reexports_work_end_to_end() {
    let v: Value<std::sync::atomic::AtomicU64> =
        Value::new(std::sync::atomic::AtomicU64::new(3)).unwrap();
    assert_eq!(v.load(std::sync::atomic::Ordering::Relaxed), 3);
    assert!(cpu_count() >= 1);
}

#[cfg(feature = "cluster")]
#[test]
fn the_cluster_feature_reexports_the_cluster_crate() {
    fn same<T: 'static, U: 'static>() -> bool {
        std::any::TypeId::of::<T>() == std::any::TypeId::of::<U>()
    }
    assert!(same::<multiproc::ClusterExecutor, multiproc_cluster::ClusterExecutor>());
    assert!(same::<multiproc::cluster::TaskOptions, multiproc_cluster::TaskOptions>());
}
