// Test 10: every closure kind is freed exactly once, on every path: the command retiring, the
// call failing, replacement, the handle closing with commands in flight.
mod common;

use std::panic::{self, AssertUnwindSafe};

use common::{connected, have_nbdkit, DropCounter, Nbdkit, EINVAL, MIB};
use nbd::{AioBuffer, CompletionCallback, Handle};

fn completion(counter: &DropCounter, ret: i32) -> CompletionCallback {
    let token = counter.token();
    CompletionCallback::new(move |_| {
        let _ = &token;
        ret
    })
}

fn drain(h: &Handle) {
    while h.aio_in_flight().unwrap() > 0 {
        h.poll(-1).unwrap();
    }
}

#[test]
fn completion_retired_by_its_callback() {
    if !have_nbdkit() {
        return;
    }
    let (_server, h) = connected(&["memory", "1M"]);
    let counter = DropCounter::new();
    let buf = AioBuffer::new(4096);
    h.aio_pread(&buf, 0, completion(&counter, 1), None).unwrap();
    assert_eq!(counter.dropped(), 0);
    drain(&h);
    assert_eq!(counter.dropped(), 1);
    assert!(!buf.is_busy());
}

#[test]
fn completion_collected_with_command_completed() {
    if !have_nbdkit() {
        return;
    }
    let (_server, h) = connected(&["memory", "1M"]);
    let counter = DropCounter::new();
    let buf = AioBuffer::new(4096);
    let cookie = h.aio_pwrite(&buf, 0, completion(&counter, 0), None).unwrap();
    while !h.aio_command_completed(cookie).unwrap() {
        h.poll(-1).unwrap();
    }
    assert_eq!(counter.dropped(), 1);
    drop(h);
    assert_eq!(counter.dropped(), 1);
}

#[test]
fn completion_freed_when_the_call_fails() {
    let h = Handle::new().unwrap();
    let counter = DropCounter::new();
    let buf = AioBuffer::new(4096);
    assert!(h.aio_pread(&buf, 0, completion(&counter, 1), None).is_err());
    assert_eq!(counter.dropped(), 1);
    assert!(!buf.is_busy());
    assert!(h.aio_flush(completion(&counter, 1), None).is_err());
    assert_eq!(counter.dropped(), 2);
}

#[test]
fn commands_in_flight_at_close() {
    if !have_nbdkit() {
        return;
    }
    let (_server, h) = connected(&["memory", "1M"]);
    let counter = DropCounter::new();
    let bufs: Vec<AioBuffer> = (0..4).map(|_| AioBuffer::new(65536)).collect();
    for (i, b) in bufs.iter().enumerate() {
        h.aio_pread(b, i as u64 * 65536, completion(&counter, 1), None).unwrap();
    }
    // Without a completion callback the buffer's lease rides on a closure with only .free.
    let plain = AioBuffer::new(512);
    h.aio_pread(&plain, 0, None, None).unwrap();
    assert!(bufs.iter().all(AioBuffer::is_busy) && plain.is_busy());
    drop(h);
    assert_eq!(counter.dropped(), 4);
    assert!(!bufs.iter().any(AioBuffer::is_busy) && !plain.is_busy());
}

#[test]
fn chunk_callbacks() {
    if !have_nbdkit() {
        return;
    }
    let (_server, h) = connected(&["memory", "1M"]);
    let counter = DropCounter::new();
    let token = counter.token();
    h.pread_structured(
        &mut [0u8; 4096],
        0,
        move |_: &[u8], _, _, _: &mut i32| {
            let _ = &token;
            0
        },
        None,
    )
    .unwrap();
    assert_eq!(counter.dropped(), 1);

    let buf = AioBuffer::new(4096);
    let token = counter.token();
    h.aio_pread_structured(
        &buf,
        0,
        move |_: &[u8], _, _, _: &mut i32| {
            let _ = &token;
            0
        },
        completion(&counter, 1),
        None,
    )
    .unwrap();
    drain(&h);
    assert_eq!(counter.dropped(), 3);
}

#[test]
fn extent_callbacks() {
    if !have_nbdkit() {
        return;
    }
    let server = Nbdkit::unix(&["memory", "1M"]);
    let h = Handle::new().unwrap();
    let counter = DropCounter::new();
    let token = counter.token();
    // Before connecting the call fails, and the closure is freed at once.
    assert!(h
        .block_status(
            MIB,
            0,
            move |_: &str, _, _: &[u32], _: &mut i32| {
                let _ = &token;
                0
            },
            None
        )
        .is_err());
    assert_eq!(counter.dropped(), 1);
    h.add_meta_context(nbd::CONTEXT_BASE_ALLOCATION).unwrap();
    h.connect_uri(&server.uri).unwrap();
    let token = counter.token();
    h.block_status(
        MIB,
        0,
        move |_: &str, _, _: &[u32], _: &mut i32| {
            let _ = &token;
            0
        },
        None,
    )
    .unwrap();
    assert_eq!(counter.dropped(), 2);
    let token = counter.token();
    let cookie = h
        .aio_block_status(
            MIB,
            0,
            move |_: &str, _, _: &[u32], _: &mut i32| {
                let _ = &token;
                0
            },
            None,
            None,
        )
        .unwrap();
    drain(&h);
    // A command keeps its closures until it is retired, as in libnbd.
    assert_eq!(counter.dropped(), 2);
    assert!(h.aio_command_completed(cookie).unwrap());
    assert_eq!(counter.dropped(), 3);
}

#[test]
fn list_and_context_callbacks() {
    if !have_nbdkit() {
        return;
    }
    let server = Nbdkit::unix(&["memory", "1M"]);
    let h = Handle::new().unwrap();
    let counter = DropCounter::new();
    // Not in option mode: both calls fail and free their closures.
    let token = counter.token();
    assert!(h
        .opt_list(move |_: &str, _: &str| {
            let _ = &token;
            0
        })
        .is_err());
    let token = counter.token();
    assert!(h
        .opt_list_meta_context(move |_: &str| {
            let _ = &token;
            0
        })
        .is_err());
    assert_eq!(counter.dropped(), 2);
    h.set_opt_mode(true).unwrap();
    h.connect_uri(&server.uri).unwrap();
    let token = counter.token();
    h.opt_list(move |_: &str, _: &str| {
        let _ = &token;
        0
    })
    .unwrap();
    let token = counter.token();
    h.opt_list_meta_context(move |_: &str| {
        let _ = &token;
        0
    })
    .unwrap();
    assert_eq!(counter.dropped(), 4);
    let token = counter.token();
    h.aio_opt_list(
        move |_: &str, _: &str| {
            let _ = &token;
            0
        },
        completion(&counter, 1),
    )
    .unwrap();
    while h.aio_is_connecting() {
        h.poll(-1).unwrap();
    }
    assert_eq!(counter.dropped(), 6);
}

#[test]
fn debug_callback() {
    let counter = DropCounter::new();
    let h = Handle::new().unwrap();
    for expected in 0..3 {
        let token = counter.token();
        h.set_debug_callback(move |_: &str, _: &str| {
            let _ = &token;
            0
        })
        .unwrap();
        assert_eq!(counter.dropped(), expected);
    }
    drop(h);
    assert_eq!(counter.dropped(), 3);
}

#[test]
fn writer_callback() {
    let counter = DropCounter::new();
    let h = Handle::new().unwrap();
    let token = counter.token();
    h.set_concurrent_writer(move |_: &[u8]| {
        let _ = &token;
        0
    })
    .unwrap();
    // A handle has one writer: the second is refused and freed at once.
    let token = counter.token();
    let err = h
        .set_concurrent_writer(move |_: &[u8]| {
            let _ = &token;
            0
        })
        .unwrap_err();
    assert_eq!(err.errno(), EINVAL);
    assert_eq!(counter.dropped(), 1);
    drop(h);
    assert_eq!(counter.dropped(), 2);
}

#[test]
fn panicking_callback_is_still_freed_once() {
    if !have_nbdkit() {
        return;
    }
    let (_server, h) = connected(&["memory", "1M"]);
    let counter = DropCounter::new();
    let token = counter.token();
    let buf = AioBuffer::new(512);
    let cookie = h
        .aio_pread(
            &buf,
            0,
            CompletionCallback::new(move |_| {
                let _ = &token;
                panic!("completion panicked")
            }),
            None,
        )
        .unwrap();
    let caught = panic::catch_unwind(AssertUnwindSafe(|| drain(&h)));
    assert!(caught.is_err());
    // The panicking callback returned -1, so the command waits to be collected, and its
    // closure lives until then.
    drain(&h);
    assert_eq!(counter.dropped(), 0);
    assert!(h.aio_command_completed(cookie).is_err());
    assert_eq!(counter.dropped(), 1);
    assert!(!buf.is_busy());
}
