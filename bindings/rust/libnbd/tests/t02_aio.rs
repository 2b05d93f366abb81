// Test 2 of the libnbd crate: asynchronous commands with 'static buffers, completion closures
// given as Some(closure) or None, cookies, a server error reaching the completion, closures
// freed once, and a callback's panic resumed in Rust instead of unwinding into C.
mod support;

use std::ffi::c_int;
use std::sync::atomic::{AtomicI32, AtomicUsize, Ordering};
use std::sync::Arc;

use libnbd::{CmdFlag, Cookie, Handle};
use support::{connected, have_nbdkit, pattern, DropCounter, Nbdkit, EIO};

fn wait_for(nbd: &Handle, cookie: &Cookie) -> libnbd::Result<bool> {
    loop {
        match nbd.aio_command_completed(cookie.0) {
            Ok(false) => {
                nbd.poll(-1)?;
            }
            done => return done,
        }
    }
}

#[test]
fn write_then_read_with_and_without_completion() {
    if !have_nbdkit() {
        return;
    }
    let (_server, nbd) = connected(&["memory", "1M"]);
    let out: &'static [u8] = Box::leak(pattern(4096, 8192).into_boxed_slice());
    let calls = Arc::new(AtomicUsize::new(0));
    let seen = calls.clone();
    let freed = DropCounter::new();
    let token = freed.token();
    let write = nbd
        .aio_pwrite(
            out,
            4096,
            Some(move |error: &mut c_int| {
                let _keep = &token;
                assert_eq!(*error, 0);
                seen.fetch_add(1, Ordering::SeqCst);
                1 // retires the command
            }),
            Some(CmdFlag::FUA),
        )
        .unwrap();
    while nbd.aio_in_flight().unwrap() > 0 {
        nbd.poll(-1).unwrap();
    }
    assert_eq!(calls.load(Ordering::SeqCst), 1);
    assert_eq!(freed.dropped(), 1);
    // Retired by its completion: the cookie is no longer known, which reads as not completed.
    assert!(!nbd.aio_command_completed(write.0).unwrap());

    let back: &'static mut [u8] = Box::leak(vec![0u8; 8192].into_boxed_slice());
    let back_ptr = back.as_ptr();
    let read = nbd.aio_pread(back, 4096, None::<fn(&mut c_int) -> c_int>, None).unwrap();
    assert!(read.0 > write.0);
    assert!(wait_for(&nbd, &read).unwrap());
    // SAFETY: the command has retired; the library no longer writes to the buffer.
    let data = unsafe { std::slice::from_raw_parts(back_ptr, 8192) };
    assert_eq!(data, out);

    let flush = nbd.aio_flush(None::<fn(&mut c_int) -> c_int>, None).unwrap();
    let mut peeked: u64 = 0;
    while peeked != flush.0 {
        nbd.poll(-1).unwrap();
        peeked = nbd.aio_peek_command_completed().unwrap_or(0);
    }
    assert!(nbd.aio_command_completed(flush.0).unwrap());
    assert_eq!(nbd.aio_in_flight().unwrap(), 0u32);
}

#[test]
fn server_error_reaches_the_completion_and_the_cookie() {
    if !have_nbdkit() {
        return;
    }
    let (_server, nbd) =
        connected(&["--filter=error", "memory", "1M", "error-pread=EIO", "error-pread-rate=100%"]);
    let errno = Arc::new(AtomicI32::new(-1));
    let seen = errno.clone();
    let buf: &'static mut [u8] = Box::leak(vec![0u8; 512].into_boxed_slice());
    let cookie = nbd
        .aio_pread(
            buf,
            0,
            Some(move |error: &mut c_int| {
                seen.store(*error, Ordering::SeqCst);
                0 // leaves the command for aio_command_completed
            }),
            None,
        )
        .unwrap();
    let err = wait_for(&nbd, &cookie).unwrap_err();
    assert_eq!(errno.load(Ordering::SeqCst), EIO);
    assert_eq!(err.errno(), Some(EIO));
    assert!(err.is_recoverable(), "{err:?}");
    // The synchronous form reports the same.
    let mut sector = [0u8; 512];
    assert_eq!(nbd.pread(&mut sector, 0, None).unwrap_err().errno(), Some(EIO));
}

#[test]
fn a_panicking_callback_is_resumed_by_the_method() {
    if !have_nbdkit() {
        return;
    }
    let server = Nbdkit::unix(&["memory", "1M"]);
    let nbd = Handle::new().unwrap();
    nbd.add_meta_context(libnbd::CONTEXT_BASE_ALLOCATION).unwrap();
    nbd.connect_uri(server.uri.as_str()).unwrap();
    let freed = DropCounter::new();
    let token = freed.token();
    let result = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
        nbd.block_status(
            65536,
            0,
            move |_, _, _, _| {
                let _keep = &token;
                panic!("from the extent callback");
            },
            None,
        )
    }));
    let payload = result.expect_err("the panic comes back");
    assert_eq!(payload.downcast_ref::<&str>(), Some(&"from the extent callback"));
    assert_eq!(freed.dropped(), 1);
    // The handle is still usable.
    let mut sector = [0u8; 512];
    nbd.pread(&mut sector, 0, None).unwrap();
}
