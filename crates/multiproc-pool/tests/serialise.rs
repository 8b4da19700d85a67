//! A value that cannot be serialised fails with the serializer's own message, where in the
//! value it came from and the value's type (postcard alone says "Serde Serialization
//! Error"), for results (in the worker) and arguments (in the parent), under every start
//! method (PO07, PO27).

mod common;

use common::{each_method, executor, pool, METHODS};
use multiproc_pool::{ErrorKind, Executor};
use serde::{Deserialize, Serialize, Serializer};

/// A ratio that refuses to be serialised when it is not a number.
#[derive(Debug, Deserialize)]
struct Ratio(f64);

impl Serialize for Ratio {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        if self.0.is_nan() {
            return Err(serde::ser::Error::custom(format!("ratio is NaN (from {:?})", self.0)));
        }
        s.serialize_f64(self.0)
    }
}

#[derive(Debug, Serialize, Deserialize)]
struct Report {
    name: String,
    ratios: Vec<Ratio>,
}

/// Its second ratio is NaN when `bad`.
fn report(bad: bool) -> Report {
    let r = if bad { f64::NAN } else { 0.5 };
    Report { name: "r".into(), ratios: vec![Ratio(1.0), Ratio(r)] }
}

fn count_ratios(r: Report) -> usize {
    r.ratios.len()
}

/// Checks a codec error names the message, the path and the type.
fn check(e: &multiproc_pool::Error, what: &str, path: &str) {
    assert_eq!(e.kind(), ErrorKind::Codec, "{e}");
    let s = e.to_string();
    let ty = std::any::type_name::<Report>();
    assert!(s.contains(&format!("cannot serialise {what} (type `{ty}`)")), "{s}");
    assert!(s.contains(&format!("at {path}: ratio is NaN (from NaN)")), "{s}");
    assert!(!s.contains("Serde Serialization Error"), "{s}");
}

#[test]
fn result_errors_carry_the_serializers_message() {
    each_method(90, METHODS, |m| {
        let p = pool(2, m);
        let pids = p.worker_pids();
        check(&p.apply(report, true).unwrap_err(), "the result", ".ratios[1]");
        let out: Vec<_> =
            p.job().chunksize(2).imap(report, [false, true, false]).unwrap().collect();
        assert_eq!(out[0].as_ref().unwrap().ratios.len(), 2);
        check(out[1].as_ref().unwrap_err(), "the result", ".ratios[1]");
        assert_eq!(out[2].as_ref().unwrap().ratios[1].0, 0.5);
        assert_eq!(p.worker_pids(), pids, "no worker lost");
        let ex = executor(1, m);
        check(&ex.submit(report, true).unwrap().result().unwrap_err(), "the result", ".ratios[1]");
        assert_eq!(ex.submit(report, false).unwrap().result().unwrap().ratios.len(), 2);
    });
}

#[test]
fn argument_errors_carry_the_serializers_message() {
    each_method(90, METHODS, |m| {
        let p = pool(2, m);
        check(&p.apply(count_ratios, report(true)).unwrap_err(), "the argument", ".ratios[1]");
        let items = vec![report(false), report(false), report(true)];
        let e = p.job().chunksize(2).map(count_ratios, items).unwrap_err();
        check(&e, "the argument of item 2", ".ratios[1]");
        let ex = executor(1, m);
        let e = ex.submit(count_ratios, report(true)).unwrap().result().unwrap_err();
        check(&e, "the argument", ".ratios[1]");
        assert_eq!(p.apply(count_ratios, report(false)).unwrap(), 2);
    });
}
