// support/mod.rs: what the libnbd crate's tests share: the nbd crate's test support (nbdkit as a
// child on a private socket, temporary directories, drop counters) and a connected Handle.
#![allow(dead_code)]

#[path = "../../../tests/common/mod.rs"]
mod common;

pub use common::*;

/// A fresh nbdkit serving ARGS on a Unix socket and a libnbd::Handle connected to it; bind
/// them as `let (_server, nbd) = connected(..)` so that the handle is dropped first.
pub fn connected(args: &[&str]) -> (Nbdkit, libnbd::Handle) {
    let server = Nbdkit::unix(args);
    let nbd = libnbd::Handle::new().unwrap();
    nbd.connect_uri(server.uri.as_str()).unwrap();
    (server, nbd)
}
