//! Named objects on a manager: a second client (connected by address and authkey, sharing
//! nothing else) gets the same object by name; a name holding another kind is an error.

use multiproc_manager::{ErrorKind, Manager};

#[test]
fn named_objects_are_shared_by_name_and_typed_by_kind() {
    let m = Manager::start().unwrap();
    let other = Manager::connect(m.address(), m.authkey()).unwrap();
    let a = m.named_list::<u32>("jobs").unwrap();
    a.append(1).unwrap();
    let b = other.named_list::<u32>("jobs").unwrap();
    b.append(2).unwrap();
    assert_eq!(a.to_vec().unwrap(), [1, 2], "one list, reached by name from two clients");
    // The name keeps the object when every proxy is gone.
    drop((a, b));
    assert_eq!(other.named_list::<u32>("jobs").unwrap().to_vec().unwrap(), [1, 2]);
    // get-or-create: the value is made once, with the first caller's initial value.
    let v = m.named_value("answer", 42u64).unwrap();
    assert_eq!(other.named_value("answer", 7u64).unwrap().get().unwrap(), 42);
    drop(v);
    // Another kind under the same name is a typed error, and the object is untouched.
    assert_eq!(m.named_dict::<u32, u32>("jobs").unwrap_err().kind(), ErrorKind::WrongKind);
    assert_eq!(other.named_lock("answer").unwrap_err().kind(), ErrorKind::WrongKind);
    assert_eq!(m.named_list::<u32>("jobs").unwrap().len().unwrap(), 2);
    let e = m.named_event("go").unwrap();
    other.named_event("go").unwrap().set().unwrap();
    assert!(e.is_set().unwrap());
    m.shutdown().unwrap();
}
