//! Start methods, contexts and the process-wide default (PL25–PL28). One test: it changes
//! process-wide state.

use multiproc_spawn::*;

fn report_method(_: ()) -> (Option<StartMethod>, StartMethod) {
    (current_process().start_method(), get_start_method())
}

#[test]
fn start_methods_and_contexts() {
    assert_eq!(StartMethod::DEFAULT, StartMethod::Forkserver);
    assert_eq!(StartMethod::all()[0], StartMethod::DEFAULT);
    assert!(!StartMethod::all().contains(&StartMethod::DEFAULT) || StartMethod::all().len() == 3);
    assert_eq!(start_method_if_set(), None);
    assert_eq!(get_start_method(), StartMethod::Forkserver);
    for m in StartMethod::all() {
        assert_eq!(m.name().parse::<StartMethod>().unwrap(), m);
        let ctx = Context::new(m);
        assert_eq!(ctx.start_method(), m);
        let h = ctx.process().target(report_method, ()).start().unwrap();
        assert_eq!(h.start_method(), m);
        assert_eq!(h.join().unwrap(), (Some(m), m), "a child reports the method that started it");
    }
    assert!("vfork".parse::<StartMethod>().is_err());
    // PL28: using contexts leaves the global unset.
    assert_eq!(start_method_if_set(), None);

    // PL26
    set_start_method(StartMethod::Spawn).unwrap();
    assert_eq!(set_start_method(StartMethod::Fork).unwrap_err().kind(), ErrorKind::AlreadySet);
    assert_eq!(get_start_method(), StartMethod::Spawn);
    assert_eq!(Context::default_context().start_method(), StartMethod::Spawn);
    let h = Process::builder().target(report_method, ()).start().unwrap();
    assert_eq!(h.start_method(), StartMethod::Spawn);
    assert_eq!(h.join().unwrap(), (Some(StartMethod::Spawn), StartMethod::Spawn));
    force_start_method(StartMethod::Fork);
    let h = Process::builder().target(report_method, ()).start().unwrap();
    assert_eq!(h.join().unwrap(), (Some(StartMethod::Fork), StartMethod::Fork));
    // A closure follows the global method too.
    let h = Process::builder().target_closure(|| 3u8).start().unwrap();
    assert_eq!(h.join().unwrap(), 3);
}
