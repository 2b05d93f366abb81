// Test 3 of the libnbd crate: callbacks with byte strings: block status (32- and 64-bit
// extents) in base:allocation, and the option-mode listings (exports, contexts).
mod support;

use std::sync::{Arc, Mutex};

use libnbd::types::NbdExtent;
use libnbd::{Handle, CONTEXT_BASE_ALLOCATION, STATE_HOLE, STATE_ZERO};
use support::{have_nbdkit, Nbdkit, MIB};

#[test]
fn block_status_in_base_allocation() {
    if !have_nbdkit() {
        return;
    }
    let server = Nbdkit::unix(&["memory", "1M"]);
    let nbd = Handle::new().unwrap();
    nbd.add_meta_context(CONTEXT_BASE_ALLOCATION).unwrap();
    nbd.connect_uri(server.uri.clone()).unwrap();
    assert!(nbd.can_meta_context(CONTEXT_BASE_ALLOCATION).unwrap());
    nbd.pwrite(&[0x5a; 65536], 0, None).unwrap();

    let entries = Arc::new(Mutex::new(Vec::new()));
    let into = entries.clone();
    nbd.block_status(
        MIB,
        0,
        move |metacontext, offset, extents, error| {
            assert_eq!((metacontext, offset, *error), (CONTEXT_BASE_ALLOCATION, 0, 0));
            into.lock().unwrap().extend_from_slice(extents);
            0
        },
        None,
    )
    .unwrap();
    let entries = Arc::try_unwrap(entries).expect("the callback was freed").into_inner().unwrap();
    // Pairs of (length, flags): the data written, then a hole reading as zeroes.
    assert_eq!(entries[..2], [65536, 0]);
    assert_eq!(entries[3], STATE_HOLE | STATE_ZERO);
    assert_eq!(entries.chunks(2).map(|p| u64::from(p[0])).sum::<u64>(), MIB);

    let wide = Arc::new(Mutex::new(Vec::<NbdExtent>::new()));
    let into = wide.clone();
    nbd.block_status_64(
        MIB,
        0,
        move |_, _, extents: &[NbdExtent], _| {
            into.lock().unwrap().extend_from_slice(extents);
            0
        },
        Some(libnbd::CmdFlag::REQ_ONE),
    )
    .unwrap();
    let wide = wide.lock().unwrap();
    assert_eq!(wide[0], NbdExtent { length: 65536, flags: 0 });
    assert_eq!(wide.len(), 1); // REQ_ONE
}

#[test]
fn option_mode_lists() {
    if !have_nbdkit() {
        return;
    }
    let server = Nbdkit::unix(&[
        "-e",
        "foo",
        "--filter=exportname",
        "memory",
        "1M",
        "exportname=foo",
        "exportname=b\u{e4}r",
        "exportname-list=explicit",
    ]);
    let nbd = Handle::new().unwrap();
    nbd.set_opt_mode(true).unwrap();
    nbd.connect_uri(server.uri.clone()).unwrap();
    assert!(nbd.aio_is_negotiating());
    let names = Arc::new(Mutex::new(Vec::new()));
    let into = names.clone();
    let count = nbd
        .opt_list(move |name: &[u8], _description: &[u8]| {
            into.lock().unwrap().push(name.to_vec());
            0
        })
        .unwrap();
    assert_eq!(count, 2u32);
    assert_eq!(*names.lock().unwrap(), [b"foo".to_vec(), "b\u{e4}r".as_bytes().to_vec()]);

    let contexts = Arc::new(Mutex::new(Vec::new()));
    let into = contexts.clone();
    let count = nbd
        .opt_list_meta_context_queries([CONTEXT_BASE_ALLOCATION], move |name: &[u8]| {
            into.lock().unwrap().push(name.to_vec());
            0
        })
        .unwrap();
    assert_eq!(count, 1);
    assert_eq!(*contexts.lock().unwrap(), [CONTEXT_BASE_ALLOCATION.to_vec()]);
    nbd.opt_go().unwrap();
    assert!(nbd.aio_is_ready());
    assert_eq!(nbd.get_size().unwrap(), MIB);
}
