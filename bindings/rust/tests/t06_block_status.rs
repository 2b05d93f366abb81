// Test 6: block status: the extents of base:allocation after writes and trims.
mod common;

use std::sync::{Arc, Mutex};

use common::{have_nbdkit, Nbdkit, MIB};
use nbd::{CompletionCallback, Handle};

type Extents = Arc<Mutex<Vec<(String, u64, Vec<u32>)>>>;

fn setup() -> (Nbdkit, Handle) {
    let server = Nbdkit::unix(&["memory", "1M"]);
    let h = Handle::new().unwrap();
    h.add_meta_context(nbd::CONTEXT_BASE_ALLOCATION).unwrap();
    h.connect_uri(&server.uri).unwrap();
    h.pwrite(&vec![1u8; 65536], 0, None).unwrap();
    (server, h)
}

fn recorder(into: &Extents) -> impl FnMut(&str, u64, &[u32], &mut i32) -> i32 + Send + 'static {
    let into = into.clone();
    move |context: &str, offset: u64, entries: &[u32], error: &mut i32| {
        assert_eq!(*error, 0);
        into.lock().unwrap().push((context.to_owned(), offset, entries.to_vec()));
        0
    }
}

// (length, flags) pairs covering [0, 1 MiB): data first, then a hole reading as zeroes.
fn check(extents: &Extents) {
    let extents = extents.lock().unwrap();
    assert_eq!(extents.len(), 1);
    let (context, offset, entries) = &extents[0];
    assert_eq!(context, "base:allocation");
    assert_eq!(*offset, 0);
    assert_eq!(entries.len() % 2, 0);
    let pairs: Vec<(u32, u32)> = entries.chunks(2).map(|p| (p[0], p[1])).collect();
    assert_eq!(pairs.iter().map(|p| p.0 as u64).sum::<u64>(), MIB);
    assert_eq!(pairs[0].1 & nbd::STATE_HOLE, 0);
    assert!(pairs[0].0 >= 65536);
    let last = pairs.last().unwrap();
    assert_eq!(last.1, nbd::STATE_HOLE | nbd::STATE_ZERO);
}

#[test]
fn sync_block_status() {
    if !have_nbdkit() {
        return;
    }
    let (_server, h) = setup();
    assert!(h.can_meta_context(nbd::CONTEXT_BASE_ALLOCATION).unwrap());
    let extents = Extents::default();
    h.block_status(MIB, 0, recorder(&extents), None).unwrap();
    check(&extents);

    // REQ_ONE: one extent only.
    let one = Extents::default();
    h.block_status(MIB, 0, recorder(&one), nbd::CmdFlags::REQ_ONE).unwrap();
    assert_eq!(one.lock().unwrap()[0].2.len(), 2);
}

#[test]
fn aio_block_status() {
    if !have_nbdkit() {
        return;
    }
    let (_server, h) = setup();
    let extents = Extents::default();
    let finished = Arc::new(Mutex::new(None));
    let f = finished.clone();
    h.aio_block_status(
        MIB,
        0,
        recorder(&extents),
        CompletionCallback::new(move |error| {
            *f.lock().unwrap() = Some(*error);
            1
        }),
        None,
    )
    .unwrap();
    while h.aio_in_flight().unwrap() > 0 {
        h.poll(-1).unwrap();
    }
    assert_eq!(*finished.lock().unwrap(), Some(0));
    check(&extents);
}
