// Test 11: the concurrent writer: the library's ready-made thread, an application's own writer,
// and the errors a writer reports.
mod common;

use std::io::Write;
use std::mem::ManuallyDrop;
use std::os::fd::FromRawFd;
use std::sync::atomic::{AtomicI32, Ordering};
use std::sync::{mpsc, Arc};

use common::{connected, have_nbdkit, pattern, EINVAL, MIB};
use nbd::{AioBuffer, CompletionCallback, Handle};

const EPIPE: i32 = 32;

#[test]
fn ready_made_writer_with_many_writes_in_flight() {
    if !have_nbdkit() {
        return;
    }
    let (_server, h) = connected(&["memory", "16M"]);
    h.start_concurrent_writer().unwrap();
    assert_eq!(h.start_concurrent_writer().unwrap_err().errno(), EINVAL);
    let first_error = Arc::new(AtomicI32::new(0));
    const CHUNK: usize = 256 * 1024;
    let size = h.get_size().unwrap();
    let mut offset = 0;
    while offset < size {
        while h.aio_in_flight().unwrap() >= 32 {
            h.poll(-1).unwrap();
        }
        let e = first_error.clone();
        let buf = AioBuffer::from(pattern(offset, CHUNK));
        h.aio_pwrite(
            &buf,
            offset,
            CompletionCallback::new(move |error| {
                let _ = e.compare_exchange(0, *error, Ordering::SeqCst, Ordering::SeqCst);
                1
            }),
            None,
        )
        .unwrap();
        offset += CHUNK as u64;
    }
    while h.aio_in_flight().unwrap() > 0 {
        h.poll(-1).unwrap();
    }
    assert_eq!(first_error.load(Ordering::SeqCst), 0);
    h.flush(None).unwrap();
    let mut back = vec![0u8; MIB as usize];
    for at in [0, 7 * MIB, 15 * MIB] {
        h.pread(&mut back, at, None).unwrap();
        assert!(back == pattern(at, MIB as usize), "data differs at {at}");
    }
}

#[test]
fn application_writer_thread() {
    if !have_nbdkit() {
        return;
    }
    let (_server, h) = connected(&["memory", "1M"]);
    let fd = h.aio_get_fd().unwrap();
    let (tx, rx) = mpsc::channel::<Vec<u8>>();
    // The thread sends what the callback queues; it ends when the handle frees the callback
    // (and with it the sender).
    let thread = std::thread::spawn(move || {
        // SAFETY: the handle owns fd and outlives this thread's writes (see below).
        let mut sock = ManuallyDrop::new(unsafe { std::fs::File::from_raw_fd(fd) });
        let mut sent = 0;
        for buf in rx {
            sock.write_all(&buf).unwrap();
            sent += buf.len();
        }
        sent
    });
    h.set_concurrent_writer(move |buf: &[u8]| {
        let _ = tx.send(buf.to_vec());
        0
    })
    .unwrap();
    let data = pattern(0, 65536);
    h.pwrite(&data, 4096, None).unwrap();
    let mut back = vec![0u8; 65536];
    h.pread(&mut back, 4096, None).unwrap();
    assert_eq!(back, data);
    // Every request has been answered, so the thread has nothing left to write; closing the
    // handle drops the sender and the thread ends.
    drop(h);
    assert!(thread.join().unwrap() >= 65536);
}

#[test]
fn writer_failure_is_fatal() {
    if !have_nbdkit() {
        return;
    }
    let (_server, h) = connected(&["memory", "1M"]);
    h.set_concurrent_writer(|_: &[u8]| {
        nbd::set_errno(EPIPE);
        -1
    })
    .unwrap();
    let err = h.pwrite(&[0u8; 512], 0, None).unwrap_err();
    assert_eq!(err.errno(), EPIPE, "{err}");
    assert!(err.is_fatal());
}

#[test]
fn writer_error_reported_from_another_thread() {
    if !have_nbdkit() {
        return;
    }
    let (_server, h) = connected(&["memory", "1M"]);
    h.start_concurrent_writer().unwrap();
    assert_eq!(h.concurrent_writer_error(0).unwrap_err().errno(), EINVAL);
    let h = Arc::new(h);
    let other = h.clone();
    std::thread::spawn(move || other.concurrent_writer_error(EPIPE).unwrap()).join().unwrap();
    let err = h.pread(&mut [0u8; 512], 0, None).unwrap_err();
    assert!(err.is_fatal(), "{err}");
    assert!(h.aio_is_dead());
}

#[test]
fn handle_shared_between_threads() {
    if !have_nbdkit() {
        return;
    }
    let (_server, h) = connected(&["memory", "4M"]);
    h.start_concurrent_writer().unwrap();
    let h: Arc<Handle> = Arc::new(h);
    let threads: Vec<_> = (0..4u64)
        .map(|t| {
            let h = h.clone();
            std::thread::spawn(move || {
                for i in 0..16u64 {
                    let at = t * MIB + i * 65536;
                    h.pwrite(&pattern(at, 65536), at, None).unwrap();
                }
            })
        })
        .collect();
    for t in threads {
        t.join().unwrap();
    }
    let mut back = vec![0u8; MIB as usize];
    for t in 0..4u64 {
        h.pread(&mut back, t * MIB, None).unwrap();
        assert!(back == pattern(t * MIB, MIB as usize), "data differs in MiB {t}");
    }
}
