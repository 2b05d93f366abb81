// Test 5: asynchronous commands: AioBuffers leased until the command retires, completion
// callbacks (retiring or not), nbd_aio_command_completed, and the other aio calls.
mod common;

use std::sync::atomic::{AtomicI32, AtomicUsize, Ordering};
use std::sync::Arc;

use common::{connected, have_nbdkit, pattern, EBUSY};
use nbd::{AioBuffer, CompletionCallback, Handle};

fn drain(h: &Handle) {
    while h.aio_in_flight().unwrap() > 0 {
        h.poll(-1).unwrap();
    }
}

#[test]
fn write_and_read_with_completion_callbacks() {
    if !have_nbdkit() {
        return;
    }
    let (_server, h) = connected(&["memory", "1M"]);
    let done = Arc::new(AtomicUsize::new(0));
    let data = pattern(0, 65536);
    let out = AioBuffer::from(data.clone());
    let d = done.clone();
    let cookie = h
        .aio_pwrite(
            &out,
            0,
            CompletionCallback::new(move |error| {
                assert_eq!(*error, 0);
                d.fetch_add(1, Ordering::SeqCst);
                1
            }),
            None,
        )
        .unwrap();
    assert!(cookie > 0);
    // A write only reads its buffer: Rust may read it too, but not change it.
    assert!(out.try_read().is_some());
    drain(&h);
    assert_eq!(done.load(Ordering::SeqCst), 1);
    assert!(!out.is_busy());

    let back = AioBuffer::new(65536);
    let seen = back.clone();
    let matched = Arc::new(AtomicUsize::new(0));
    let m = matched.clone();
    let expected = data.clone();
    h.aio_pread(
        &back,
        0,
        CompletionCallback::new(move |error| {
            assert_eq!(*error, 0);
            // The lease ends before the completion callback runs.
            if *seen.try_read().unwrap() == expected[..] {
                m.fetch_add(1, Ordering::SeqCst);
            }
            1
        }),
        None,
    )
    .unwrap();
    drain(&h);
    assert_eq!(matched.load(Ordering::SeqCst), 1);
    assert_eq!(back.to_vec().unwrap(), data);
}

#[test]
fn buffer_is_leased_until_the_command_retires() {
    if !have_nbdkit() {
        return;
    }
    let (_server, h) = connected(&["memory", "1M"]);
    let buf = AioBuffer::new(4096);
    let cookie = h.aio_pread(&buf, 0, None, None).unwrap();
    // Nothing polled yet: the read is in flight and owns the buffer.
    assert!(buf.is_busy());
    assert!(buf.try_read().is_none() && buf.try_write().is_none());
    let err = h.aio_pread(&buf, 0, None, None).unwrap_err();
    assert_eq!(err.errno(), EBUSY);
    assert!(!err.is_fatal());
    let err = h.aio_pwrite(&buf, 0, None, None).unwrap_err();
    assert_eq!(err.errno(), EBUSY);
    // Completed but not retired: still leased.
    while !h.aio_command_completed(cookie).unwrap() {
        h.poll(-1).unwrap();
    }
    assert!(!buf.is_busy());
    assert_eq!(buf.to_vec().unwrap(), vec![0u8; 4096]);
    // A buffer borrowed by Rust cannot be given to a command.
    let guard = buf.try_write().unwrap();
    assert_eq!(h.aio_pwrite(&buf, 0, None, None).unwrap_err().errno(), EBUSY);
    drop(guard);
}

#[test]
fn collect_with_aio_command_completed() {
    if !have_nbdkit() {
        return;
    }
    let (_server, h) = connected(&["memory", "1M"]);
    let bufs: Vec<AioBuffer> = (0..8).map(|i| AioBuffer::from(pattern(i * 4096, 4096))).collect();
    let cookies: Vec<u64> = bufs
        .iter()
        .enumerate()
        .map(|(i, b)| h.aio_pwrite(b, i as u64 * 4096, None, nbd::CmdFlags::FUA).unwrap())
        .collect();
    let mut left = cookies.clone();
    while !left.is_empty() {
        h.poll(-1).unwrap();
        left.retain(|&c| !h.aio_command_completed(c).unwrap());
    }
    let flush = h.aio_flush(None, None).unwrap();
    while h.aio_peek_command_completed().unwrap_or(0) != flush {
        h.poll(-1).unwrap();
    }
    assert!(h.aio_command_completed(flush).unwrap());
    let mut back = vec![0u8; 8 * 4096];
    h.pread(&mut back, 0, None).unwrap();
    assert_eq!(back, pattern(0, 8 * 4096));
}

#[test]
fn zero_trim_cache_and_errors_in_completion() {
    if !have_nbdkit() {
        return;
    }
    let (_server, h) = connected(&["memory", "1M"]);
    h.pwrite(&[0xaa; 16384], 0, None).unwrap();
    let errors = Arc::new(AtomicI32::new(0));
    let count = Arc::new(AtomicUsize::new(0));
    let cb = || {
        let (e, c) = (errors.clone(), count.clone());
        CompletionCallback::new(move |error| {
            e.fetch_or(*error, Ordering::SeqCst);
            c.fetch_add(1, Ordering::SeqCst);
            1
        })
    };
    h.aio_zero(4096, 0, cb(), None).unwrap();
    h.aio_trim(4096, 4096, cb(), None).unwrap();
    h.aio_cache(4096, 8192, cb(), None).unwrap();
    drain(&h);
    assert_eq!((errors.load(Ordering::SeqCst), count.load(Ordering::SeqCst)), (0, 3));
    let mut back = vec![1u8; 16384];
    h.pread(&mut back, 0, None).unwrap();
    assert!(back[..8192].iter().all(|&b| b == 0));
    assert!(back[8192..].iter().all(|&b| b == 0xaa));

    // A read past the end fails in the call (strict bounds), and the callback is not called.
    let buf = AioBuffer::new(4096);
    let err = h.aio_pread(&buf, 1 << 20, cb(), None).unwrap_err();
    assert!(!err.is_fatal());
    assert!(!buf.is_busy());
    assert_eq!(count.load(Ordering::SeqCst), 3);
}

#[test]
fn event_loop_calls() {
    if !have_nbdkit() {
        return;
    }
    let (_server, h) = connected(&["memory", "1M"]);
    assert!(h.aio_get_fd().unwrap() >= 0);
    assert_eq!(h.aio_get_direction() & nbd::AIO_DIRECTION_READ, nbd::AIO_DIRECTION_READ);
    let buf = AioBuffer::new(512);
    let cookie = h.aio_pread(&buf, 0, None, None).unwrap();
    while !h.aio_command_completed(cookie).unwrap() {
        h.poll(-1).unwrap();
    }
    assert!(h.aio_is_ready() && !h.aio_is_processing());
}
