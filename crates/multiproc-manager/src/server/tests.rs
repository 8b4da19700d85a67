use super::*;
use crate::protocol::*;
use std::time::Instant;

fn server() -> (Arc<Shared>, u64) {
    let sh = Shared::new(ServerConfig {
        authkey: AuthKey::random(),
        max_frame: DEFAULT_MAX_FRAME,
        handshake_timeout: Duration::from_secs(1),
        registry: Registry::default(),
        spin: None,
    });
    let s = sh.session_open(None).unwrap();
    (sh, s)
}

fn v(b: u8) -> Stored {
    Stored { bytes: vec![b], refs: vec![] }
}

fn created(r: Response) -> Id {
    match r.unwrap() {
        Reply::Created(id) => id,
        other => panic!("{other:?}"),
    }
}

#[test]
fn list_permute_applies_only_to_the_version_read_and_only_a_permutation() {
    let (sh, s) = server();
    let l = created(sh.handle_plain(s, Request::Create(Create::List(vec![v(3), v(1), v(2)]))));
    let op = |o| sh.handle_plain(s, Request::List(l, o));
    let version = |r: Response| match r.unwrap() {
        Reply::Versioned { version, .. } => version,
        other => panic!("{other:?}"),
    };
    let v0 = version(op(ListOp::VersionedSnapshot));
    for bad in [vec![0, 1], vec![0, 0, 1], vec![0, 1, 3], vec![2, 1, 0, 0]] {
        let r = op(ListOp::Permute { version: v0, order: bad });
        assert_eq!(r.unwrap_err().kind, ErrorKind::InvalidInput);
    }
    // Reads and refused orders leave the version alone.
    op(ListOp::Len).unwrap();
    assert_eq!(version(op(ListOp::VersionedSnapshot)), v0);
    op(ListOp::SetAt(-1, v(2))).unwrap(); // a change, even to the same value
    let r = op(ListOp::Permute { version: v0, order: vec![1, 2, 0] });
    assert!(matches!(r.unwrap(), Reply::Bool(false)));
    assert!(matches!(op(ListOp::Snapshot).unwrap(), Reply::Values(vs) if vs == [v(3), v(1), v(2)]));
    let v1 = version(op(ListOp::VersionedSnapshot));
    assert!(matches!(
        op(ListOp::Permute { version: v1, order: vec![1, 2, 0] }).unwrap(),
        Reply::Bool(true)
    ));
    assert!(matches!(op(ListOp::Snapshot).unwrap(), Reply::Values(vs) if vs == [v(1), v(2), v(3)]));
    // The same order again is stale: the permutation changed the version.
    assert!(matches!(
        op(ListOp::Permute { version: v1, order: vec![1, 2, 0] }).unwrap(),
        Reply::Bool(false)
    ));
}

#[test]
fn list_ops_and_errors() {
    let (sh, s) = server();
    let l = created(sh.handle_plain(s, Request::Create(Create::List(vec![v(1)]))));
    let op = |o| sh.handle_plain(s, Request::List(l, o));
    op(ListOp::Append(v(2))).unwrap();
    op(ListOp::Extend(vec![v(3), v(2)])).unwrap();
    assert!(matches!(op(ListOp::Len).unwrap(), Reply::Count(4)));
    assert!(matches!(op(ListOp::Count(vec![2])).unwrap(), Reply::Count(2)));
    assert!(matches!(op(ListOp::Index(vec![3])).unwrap(), Reply::Count(2)));
    assert_eq!(op(ListOp::Get(9)).unwrap_err().kind, ErrorKind::IndexOutOfRange);
    assert_eq!(op(ListOp::Remove(vec![7])).unwrap_err().kind, ErrorKind::ValueNotFound);
    op(ListOp::Remove(vec![2])).unwrap();
    assert!(matches!(op(ListOp::Snapshot).unwrap(), Reply::Values(vs) if vs == [v(1), v(3), v(2)]));
    assert!(matches!(op(ListOp::Pop(None)).unwrap(), Reply::Value(x) if x == v(2)));
    assert!(matches!(op(ListOp::Slice(0, 1)).unwrap(), Reply::Values(vs) if vs == [v(1)]));
    assert_eq!(op(ListOp::Slice(1, 5)).unwrap_err().kind, ErrorKind::IndexOutOfRange);
    op(ListOp::Clear).unwrap();
    assert_eq!(op(ListOp::Pop(None)).unwrap_err().kind, ErrorKind::IndexOutOfRange);
    // The wrong kind of request for the object is an error, not a panic.
    let r = sh.handle_plain(s, Request::Dict(l, DictOp::Len));
    assert_eq!(r.unwrap_err().kind, ErrorKind::WrongKind);
}

#[test]
fn objects_live_while_referenced_by_sessions_and_containers() {
    let (sh, s) = server();
    let inner = created(sh.handle_plain(s, Request::Create(Create::List(vec![]))));
    let outer = created(sh.handle_plain(s, Request::Create(Create::Dict(vec![]))));
    let holding = Stored { bytes: vec![0], refs: vec![inner] };
    sh.handle_plain(s, Request::Dict(outer, DictOp::Insert(vec![1], holding))).unwrap();
    // The session drops its own reference to the inner list: the dict keeps it alive.
    sh.handle_plain(s, Request::Decref(vec![inner])).unwrap();
    assert_eq!(sh.num_objects(), 2);
    // A second session reads the value: it gets its own reference.
    let s2 = sh.session_open(None).unwrap();
    sh.handle_plain(s2, Request::Dict(outer, DictOp::Get(vec![1]))).unwrap();
    sh.handle_plain(s, Request::Dict(outer, DictOp::Clear)).unwrap();
    assert_eq!(sh.num_objects(), 2, "s2 still holds the inner list");
    sh.session_conn_closed(s2);
    assert_eq!(sh.num_objects(), 1);
    sh.session_conn_closed(s);
    assert_eq!(sh.num_objects(), 0);
}

#[test]
fn freeing_a_container_frees_what_it_held_and_cycles_do_not_crash() {
    let (sh, s) = server();
    let a = created(sh.handle_plain(s, Request::Create(Create::List(vec![]))));
    let b = created(sh.handle_plain(s, Request::Create(Create::List(vec![]))));
    let hold_b = Stored { bytes: vec![0], refs: vec![b] };
    sh.handle_plain(s, Request::List(a, ListOp::Append(hold_b))).unwrap();
    sh.handle_plain(s, Request::Decref(vec![b])).unwrap();
    sh.handle_plain(s, Request::Decref(vec![a])).unwrap();
    assert_eq!(sh.num_objects(), 0);
    // A self-containing list.
    let c = created(sh.handle_plain(s, Request::Create(Create::List(vec![]))));
    let me = Stored { bytes: vec![0], refs: vec![c] };
    sh.handle_plain(s, Request::List(c, ListOp::Append(me))).unwrap();
    sh.handle_plain(s, Request::Decref(vec![c])).unwrap();
    // A value referring to an object that does not exist is refused whole.
    let d = created(sh.handle_plain(s, Request::Create(Create::List(vec![]))));
    let bad = Stored { bytes: vec![0], refs: vec![d, 999_999] };
    let r = sh.handle_plain(s, Request::List(d, ListOp::Append(bad)));
    assert_eq!(r.unwrap_err().kind, ErrorKind::ObjectGone);
    sh.handle_plain(s, Request::Decref(vec![d])).unwrap();
    assert_eq!(sh.num_objects(), 1, "only the self-containing list remains");
}

#[test]
fn holds_bridge_a_proxy_in_transit_and_die_with_their_session() {
    let (sh, s) = server();
    let l = created(sh.handle_plain(s, Request::Create(Create::List(vec![]))));
    let Reply::Hold(h) = sh.handle_plain(s, Request::Hold(l)).unwrap() else { panic!() };
    sh.handle_plain(s, Request::Decref(vec![l])).unwrap();
    assert_eq!(sh.num_objects(), 1, "the hold keeps it alive");
    let s2 = sh.session_open(None).unwrap();
    let r = sh.handle_plain(s2, Request::Adopt { id: l, hold: h }).unwrap();
    assert!(matches!(r, Reply::Adopted(Kind::List)));
    sh.session_conn_closed(s);
    assert_eq!(sh.num_objects(), 1);
    sh.session_conn_closed(s2);
    assert_eq!(sh.num_objects(), 0);
    // An unadopted hold dies with its session.
    let s3 = sh.session_open(None).unwrap();
    let l = created(sh.handle_plain(s3, Request::Create(Create::List(vec![]))));
    sh.handle_plain(s3, Request::Hold(l)).unwrap();
    sh.session_conn_closed(s3);
    assert_eq!(sh.num_objects(), 0);
}

#[test]
fn a_dead_session_releases_and_poisons_its_locks() {
    let (sh, s) = server();
    let l = created(sh.handle_plain(s, Request::Create(Create::Lock)));
    let s2 = sh.session_open(None).unwrap();
    sh.handle_plain(s2, Request::Incref(l)).unwrap();
    let acq = |sess| {
        sh.handle_plain(sess, Request::Lock(l, LockOp::Acquire { owner: 1, wait: Some(0) }))
            .unwrap()
    };
    assert!(matches!(acq(s2), Reply::Acquired { acquired: true, poisoned: false }));
    assert!(matches!(acq(s), Reply::Acquired { acquired: false, .. }));
    sh.session_conn_closed(s2);
    assert!(matches!(acq(s), Reply::Acquired { acquired: true, poisoned: true }));
}

#[test]
fn a_clean_goodbye_leaves_a_plain_lock_held_but_releases_an_rlock() {
    let (sh, s) = server();
    let l = created(sh.handle_plain(s, Request::Create(Create::Lock)));
    let r = created(sh.handle_plain(s, Request::Create(Create::RLock)));
    let s2 = sh.session_open(None).unwrap();
    for id in [l, r] {
        let acq = LockOp::Acquire { owner: 1, wait: Some(0) };
        assert!(matches!(
            sh.handle_plain(s2, Request::Lock(id, acq)).unwrap(),
            Reply::Acquired { acquired: true, .. }
        ));
    }
    sh.handle_plain(s2, Request::Goodbye).unwrap();
    sh.session_conn_closed(s2);
    let locked = |id| sh.handle_plain(s, Request::Lock(id, LockOp::Locked)).unwrap();
    assert!(matches!(locked(l), Reply::Bool(true)), "Python: another process releases it");
    assert!(matches!(locked(r), Reply::Bool(false)));
    sh.handle_plain(s, Request::Lock(l, LockOp::Release { owner: 9 })).unwrap();
}

#[test]
fn queue_full_and_empty_and_task_done() {
    let (sh, s) = server();
    let q = created(sh.handle_plain(s, Request::Create(Create::Queue { maxsize: 1 })));
    let op = |o| sh.handle_plain(s, Request::Queue(q, o));
    op(QueueOp::Put(v(5), Some(0))).unwrap();
    assert_eq!(op(QueueOp::Put(v(6), Some(1000))).unwrap_err().kind, ErrorKind::Timeout);
    assert_eq!(op(QueueOp::Put(v(6), Some(0))).unwrap_err().kind, ErrorKind::Full);
    assert!(matches!(op(QueueOp::Len).unwrap(), Reply::QueueLen { len: 1, maxsize: 1 }));
    assert!(matches!(op(QueueOp::Get(None)).unwrap(), Reply::Value(x) if x == v(5)));
    assert_eq!(op(QueueOp::Get(Some(0))).unwrap_err().kind, ErrorKind::Empty);
    assert_eq!(op(QueueOp::Join(Some(0))).unwrap_err().kind, ErrorKind::Timeout);
    op(QueueOp::TaskDone).unwrap();
    op(QueueOp::Join(Some(0))).unwrap();
    assert_eq!(op(QueueOp::TaskDone).unwrap_err().kind, ErrorKind::TooManyReleases);
}

#[test]
fn dict_setdefault_popitem_and_values_keep_order() {
    let (sh, s) = server();
    let d = created(sh.handle_plain(s, Request::Create(Create::Dict(vec![]))));
    let op = |o| sh.handle_plain(s, Request::Dict(d, o));
    op(DictOp::Update(vec![(vec![2], v(20)), (vec![1], v(10))])).unwrap();
    assert!(
        matches!(op(DictOp::SetDefault(vec![2], v(99))).unwrap(), Reply::Value(x) if x == v(20))
    );
    assert!(
        matches!(op(DictOp::SetDefault(vec![3], v(30))).unwrap(), Reply::Value(x) if x == v(30))
    );
    assert!(
        matches!(op(DictOp::Keys).unwrap(), Reply::Keys(k) if k == [vec![2], vec![1], vec![3]])
    );
    assert!(matches!(op(DictOp::PopItem).unwrap(), Reply::Items(i) if i[0].0 == [3]));
    assert!(
        matches!(op(DictOp::Insert(vec![1], v(11))).unwrap(), Reply::MaybeValue(Some(x)) if x == v(10))
    );
    assert!(matches!(op(DictOp::Remove(vec![9])).unwrap(), Reply::MaybeValue(None)));
    op(DictOp::Clear).unwrap();
    assert_eq!(op(DictOp::PopItem).unwrap_err().kind, ErrorKind::KeyNotFound);
}

#[test]
fn value_cas() {
    let (sh, s) = server();
    let id = created(sh.handle_plain(s, Request::Create(Create::Value(v(1)))));
    let op = |o| sh.handle_plain(s, Request::Value(id, o));
    assert!(matches!(
        op(ValueOp::CompareAndSwap { current: vec![1], new: v(2) }).unwrap(),
        Reply::Cas(Ok(()))
    ));
    assert!(
        matches!(op(ValueOp::CompareAndSwap { current: vec![1], new: v(3) }).unwrap(), Reply::Cas(Err(x)) if x == v(2))
    );
    assert!(matches!(op(ValueOp::Swap(v(4))).unwrap(), Reply::Value(x) if x == v(2)));
    assert!(matches!(op(ValueOp::Get).unwrap(), Reply::Value(x) if x == v(4)));
}

#[test]
fn unknown_service_is_a_typed_error() {
    let (sh, s) = server();
    let r =
        sh.handle_plain(s, Request::Create(Create::Service { name: "nope".into(), init: vec![] }));
    assert_eq!(r.unwrap_err().kind, ErrorKind::NoSuchService);
}

#[test]
fn a_stop_wakes_the_owner_watch_at_once_and_a_dead_owner_stops_the_server() {
    let (sh, _) = server();
    let watch = sh.clone();
    let polls = Arc::new(AtomicU64::new(0));
    let p = polls.clone();
    let t = std::thread::spawn(move || {
        let t0 = Instant::now();
        watch.wait_stop_unless(Duration::from_secs(30), || {
            p.fetch_add(1, Ordering::Relaxed);
            true
        });
        t0.elapsed()
    });
    std::thread::sleep(Duration::from_millis(50));
    sh.stop();
    let waited = t.join().unwrap();
    assert!(waited < Duration::from_secs(5), "woken by the stop, not the poll: {waited:?}");
    assert_eq!(polls.load(Ordering::Relaxed), 0);

    let (sh, _) = server();
    let mut asked = 0;
    sh.wait_stop_unless(Duration::from_millis(5), || {
        asked += 1;
        asked < 3
    });
    assert!(sh.is_shut_down());
    assert_eq!(asked, 3);
}

#[test]
fn wait_idle_returns_when_the_last_connection_thread_ends_or_at_its_limit() {
    let (sh, _) = server();
    sh.active.fetch_add(2, Ordering::AcqRel);
    let t0 = Instant::now();
    sh.wait_idle(Duration::from_millis(30));
    assert!(t0.elapsed() >= Duration::from_millis(30), "two threads still run");
    let me = sh.clone();
    let t = std::thread::spawn(move || {
        std::thread::sleep(Duration::from_millis(20));
        me.conn_thread_done();
        std::thread::sleep(Duration::from_millis(20));
        me.conn_thread_done();
    });
    let t0 = Instant::now();
    sh.wait_idle(Duration::from_secs(30));
    assert!(t0.elapsed() < Duration::from_secs(5), "woken by the last thread: {:?}", t0.elapsed());
    assert_eq!(sh.active.load(Ordering::Acquire), 0);
    t.join().unwrap();
}
