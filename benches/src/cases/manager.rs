//! `manager.*`: a Manager server and its proxies (multiproc-manager; CPython's
//! `multiprocessing.Manager`).
//!
//! The multiproc side lands with multiproc-manager: one `fn(&Opts) -> f64` per case here (the
//! manager started before the timed window; clients are forked processes for the 4-client
//! case), then `rust: Some(..)` below.

use super::{Better, Case, Floor};

pub(crate) const CASES: &[Case] = &[
    Case {
        name: "manager.dict_get_rtt",
        unit: "µs",
        better: Better::Lower,
        floor: Floor::Case("floor.socketpair_rtt"),
        rust: None,
        python: true,
        about: "d[key] through a dict proxy: one request/response with the server process",
    },
    Case {
        name: "manager.list_append_1client",
        unit: "ops/s",
        better: Better::Higher,
        floor: Floor::None,
        rust: None,
        python: true,
        about: "list proxy append from one client, final length checked",
    },
    Case {
        name: "manager.list_append_4clients",
        unit: "ops/s",
        better: Better::Higher,
        floor: Floor::None,
        rust: None,
        python: true,
        about: "list proxy append from 4 client processes at once, final length checked",
    },
];
