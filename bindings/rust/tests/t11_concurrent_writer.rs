// Test 11: the concurrent writer: the library's ready-made thread, an application's own writer
// thread served through nbd::WriterChannel, and the errors a writer reports.
mod common;

use std::sync::atomic::{AtomicI32, Ordering};
use std::sync::{mpsc, Arc, Mutex};
use std::time::Duration;

use common::{connected, have_nbdkit, pattern, Nbdkit, EINVAL, MIB};
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

// ---- The application's writer thread, served through nbd::WriterChannel.

const EIO: i32 = 5;
const ESHUTDOWN: i32 = 108;

/// Runs f on a thread and returns a receiver of its result, so that a test fails after a
/// timeout instead of hanging when the thread never ends.
fn on_thread<T: Send + 'static>(f: impl FnOnce() -> T + Send + 'static) -> mpsc::Receiver<T> {
    let (tx, rx) = mpsc::channel();
    std::thread::spawn(move || {
        let _ = tx.send(f());
    });
    rx
}

/// The result of a thread from on_thread; fails if it has not ended within 30 s.
fn finished<T>(thread: mpsc::Receiver<T>) -> T {
    thread.recv_timeout(Duration::from_secs(30)).expect("the writer thread did not end")
}

/// Polls until no command is in flight; returns the first error of poll (the handle died).
fn complete_all(h: &Handle) -> nbd::Result<()> {
    while h.aio_in_flight()? > 0 {
        h.poll(-1)?;
    }
    Ok(())
}

/// A completion callback that records the command's error.
fn record(errors: &Arc<Mutex<Vec<i32>>>) -> CompletionCallback {
    let errors = errors.clone();
    CompletionCallback::new(move |error| {
        errors.lock().unwrap().push(*error);
        1
    })
}

#[test]
fn application_writer_thread() {
    if !have_nbdkit() {
        return;
    }
    let (_server, h) = connected(&["memory", "1M"]);
    let channel = h.writer_channel().unwrap();
    // The thread holds the channel, not the handle: it ends when the handle is dropped.
    let writer = on_thread(move || channel.run());
    let data = pattern(0, 65536);
    h.pwrite(&data, 4096, None).unwrap();
    let mut back = vec![0u8; 65536];
    h.pread(&mut back, 4096, None).unwrap();
    assert_eq!(back, data);
    drop(h);
    finished(writer).unwrap();
}

// A small deterministic generator for the mixed workload.
struct Lcg(u64);

impl Lcg {
    fn below(&mut self, n: u64) -> u64 {
        self.0 = self.0.wrapping_mul(6364136223846793005).wrapping_add(1442695040888963407);
        (self.0 >> 33) % n
    }
}

#[test]
fn hundreds_of_mixed_requests() {
    if !have_nbdkit() {
        return;
    }
    const SLOT: u64 = 128 * 1024;
    const SLOTS: u64 = 64;
    let (_server, h) = connected(&["memory", "8M"]);
    let writer = h.spawn_writer_thread().unwrap();
    let mut disk = vec![0u8; (SLOT * SLOTS) as usize];
    let mut rng = Lcg(1);
    let errors = Arc::new(Mutex::new(Vec::new()));
    let mut issued = 0;
    for round in 0..12u64 {
        // Changes to distinct slots (so their order does not matter), then a read of every
        // changed range and a flush, checked against the model once all have completed.
        let mut changed = Vec::new();
        let mut writes = Vec::new();
        for slot in 0..SLOTS {
            if rng.below(3) != 0 {
                continue;
            }
            let offset = slot * SLOT + rng.below(SLOT / 512) * 512;
            let len = 512 * (1 + rng.below((slot + 1) * SLOT - offset) / 512).min(64);
            let range = offset as usize..(offset + len) as usize;
            match rng.below(4) {
                0 => {
                    h.aio_zero(len, offset, record(&errors), None).unwrap();
                    disk[range.clone()].fill(0);
                }
                1 => {
                    // The memory plugin punches a hole: the range reads back as zeroes.
                    h.aio_trim(len, offset, record(&errors), None).unwrap();
                    disk[range.clone()].fill(0);
                }
                _ => {
                    let data = pattern(offset + round, len as usize);
                    disk[range.clone()].copy_from_slice(&data);
                    let buf = AioBuffer::from(data);
                    h.aio_pwrite(&buf, offset, record(&errors), None).unwrap();
                    writes.push(buf);
                }
            }
            changed.push(range);
        }
        complete_all(&h).unwrap();
        let reads: Vec<_> = changed
            .iter()
            .map(|r| {
                let buf = AioBuffer::new(r.len());
                h.aio_pread(&buf, r.start as u64, record(&errors), None).unwrap();
                (r.clone(), buf)
            })
            .collect();
        h.aio_flush(record(&errors), None).unwrap();
        complete_all(&h).unwrap();
        for (r, buf) in reads {
            assert!(buf.to_vec().unwrap() == disk[r.clone()], "round {round}: {r:?} differs");
        }
        issued += 2 * changed.len() + 1;
    }
    assert!(issued >= 300, "only {issued} requests");
    let errors = errors.lock().unwrap();
    assert_eq!(errors.len(), issued);
    assert!(errors.iter().all(|&e| e == 0), "{errors:?}");
    drop(h);
    writer.join().unwrap().unwrap();
}

#[test]
fn megabytes_in_one_send() {
    if !have_nbdkit() {
        return;
    }
    const CHUNK: usize = 256 * 1024;
    let (_server, h) = connected(&["memory", "16M"]);
    let mut channel = h.writer_channel().unwrap();
    // 8 MiB of writes queued before the thread takes any: its first send is far larger than
    // the socket's buffer, so the non-blocking socket fills (EAGAIN) and the send must wait.
    let errors = Arc::new(Mutex::new(Vec::new()));
    let bufs: Vec<_> = (0..32)
        .map(|i| {
            let offset = (i * CHUNK) as u64;
            let buf = AioBuffer::from(pattern(offset, CHUNK));
            h.aio_pwrite(&buf, offset, record(&errors), None).unwrap();
            buf
        })
        .collect();
    let writer = on_thread(move || {
        let mut largest = 0;
        while let Some(buf) = channel.recv() {
            largest = largest.max(buf.len());
            channel.send(&buf).unwrap();
        }
        largest
    });
    complete_all(&h).unwrap();
    assert_eq!(*errors.lock().unwrap(), vec![0; 32]);
    drop(bufs);
    let mut back = vec![0u8; 8 * MIB as usize];
    h.pread(&mut back, 0, None).unwrap();
    assert!(back == pattern(0, back.len()), "data differs");
    drop(h);
    let largest = finished(writer);
    assert!(largest >= 32 * CHUNK, "the first send was only {largest} bytes");
}

#[test]
fn send_failure_reaches_every_command() {
    if !have_nbdkit() {
        return;
    }
    let (_server, h) = connected(&["memory", "1M"]);
    let mut channel = h.writer_channel().unwrap();
    let errors = Arc::new(Mutex::new(Vec::new()));
    let bufs: Vec<_> = (0..50u64)
        .map(|i| {
            let buf = AioBuffer::new(4096);
            match i % 3 {
                0 => h.aio_pread(&buf, i * 4096, record(&errors), None).unwrap(),
                1 => h.aio_pwrite(&buf, i * 4096, record(&errors), None).unwrap(),
                _ => h.aio_flush(record(&errors), None).unwrap(),
            };
            buf
        })
        .collect();
    // The thread takes the 50 requests and, as if sending them had failed, reports EIO.
    let writer = on_thread(move || {
        let taken = channel.recv().map(|b| b.len());
        assert_eq!(channel.fail(0).unwrap_err().errno(), EINVAL);
        channel.fail(EIO).unwrap();
        channel.fail(EPIPE).unwrap(); // only the first error counts
        (taken, channel)
    });
    let (taken, channel) = finished(writer);
    assert!(taken.unwrap() > 50 * 28, "{taken:?}");
    let err = complete_all(&h).unwrap_err();
    assert_eq!(err.errno(), EIO, "{err}");
    assert!(err.is_fatal());
    assert_eq!(*errors.lock().unwrap(), vec![EIO; 50]);
    assert!(h.aio_is_dead());
    assert!(h.pread(&mut [0u8; 512], 0, None).unwrap_err().is_fatal());
    drop(bufs);
    drop(h);
    // After close: fail does nothing, recv says the handle is gone.
    assert!(channel.is_closed());
    channel.fail(EIO).unwrap();
    let mut channel = channel;
    assert_eq!(channel.recv(), None);
}

#[test]
fn dropping_the_handle_ends_a_thread_waiting_in_recv() {
    if !have_nbdkit() {
        return;
    }
    let (_server, h) = connected(&["memory", "1M"]);
    let mut channel = h.writer_channel().unwrap();
    let (tx, rx) = mpsc::channel();
    let writer = on_thread(move || {
        let mut sent = 0;
        loop {
            tx.send(sent).unwrap(); // about to wait in recv
            match channel.recv() {
                Some(buf) => {
                    channel.send(&buf).unwrap();
                    sent += buf.len();
                }
                None => return (sent, channel.is_closed()),
            }
        }
    });
    h.pwrite(&[7u8; 4096], 0, None).unwrap();
    // Every request has been answered, so the thread has sent it and waits for more.
    let sent = rx.iter().find(|&n| n >= 4096).unwrap();
    assert!(sent >= 4096 + 28, "{sent}");
    drop(h);
    let (total, closed) = finished(writer);
    assert_eq!(total, sent);
    assert!(closed);
}

#[test]
fn dropping_the_handle_ends_a_thread_blocked_in_send() {
    if !have_nbdkit() {
        return;
    }
    // Reads of 1 MiB whose replies nobody takes stall every nbdkit thread (16) in its reply, so
    // the server stops reading and the 16 MiB of writes after them cannot all be sent.
    let (_server, h) = connected(&["memory", "64M"]);
    let mut channel = h.writer_channel().unwrap();
    let mut bufs = Vec::new();
    for i in 0..32u64 {
        let buf = AioBuffer::new(MIB as usize);
        h.aio_pread(&buf, i * MIB, None, None).unwrap();
        bufs.push(buf);
    }
    for i in 0..16u64 {
        let buf = AioBuffer::from(pattern(i * MIB, MIB as usize));
        h.aio_pwrite(&buf, i * MIB, None, None).unwrap();
        bufs.push(buf);
    }
    let (tx, rx) = mpsc::channel();
    let writer = on_thread(move || {
        let buf = channel.recv().unwrap();
        tx.send(buf.len()).unwrap();
        let sent = channel.send(&buf); // blocks until the handle is dropped
        (sent.map_err(|e| e.raw_os_error()), channel.is_closed(), channel.recv())
    });
    assert!(rx.recv().unwrap() > 16 * MIB as usize);
    drop(h);
    let (sent, closed, next) = finished(writer);
    assert_eq!(sent, Err(Some(EPIPE)));
    assert!(closed);
    assert_eq!(next, None);
}

#[test]
fn arc_handle_in_the_writer_thread_keeps_the_handle_open() {
    if !have_nbdkit() {
        return;
    }
    // The pitfall: a writer thread that also holds an Arc<Handle> keeps the handle open after
    // the application has dropped its own Arc, so the writer (and a join of its thread) would
    // wait for ever.  Here the thread drops its Arc on request, which is what ends it.
    let (_server, h) = connected(&["memory", "1M"]);
    let mut channel = h.writer_channel().unwrap();
    let h = Arc::new(h);
    let held = Arc::clone(&h);
    let (release, released) = mpsc::channel::<()>();
    let writer = on_thread(move || {
        released.recv().unwrap();
        drop(held); // the last reference: this closes the handle
        channel.recv()
    });
    let weak = Arc::downgrade(&h);
    drop(h);
    assert!(weak.upgrade().is_some(), "the thread's Arc keeps the handle open");
    release.send(()).unwrap();
    let next = finished(writer);
    assert!(weak.upgrade().is_none());
    assert_eq!(next, None);
}

#[test]
fn writer_channel_states() {
    if !have_nbdkit() {
        return;
    }
    // Newly created: no socket yet, nothing installed (the handle then works without one).
    let server = Nbdkit::unix(&["memory", "1M"]);
    let h = Handle::new().unwrap();
    let err = h.writer_channel().unwrap_err();
    assert_eq!(err.errno(), EINVAL, "{err}");
    assert_eq!(h.spawn_writer_thread().unwrap_err().errno(), EINVAL);
    h.connect_uri(&server.uri).unwrap();
    h.pwrite(&[2u8; 512], 0, None).unwrap();
    drop(h);

    // Negotiating (option mode): the handle takes no writer then.
    let h = Handle::new().unwrap();
    h.set_opt_mode(true).unwrap();
    h.connect_uri(&server.uri).unwrap();
    assert!(h.aio_is_negotiating());
    let err = h.writer_channel().unwrap_err();
    assert_eq!(err.errno(), EINVAL, "{err}");
    assert!(err.is_recoverable());
    h.opt_go().unwrap();
    // Connected: one writer, and only one.
    let writer = h.spawn_writer_thread().unwrap();
    assert_eq!(h.writer_channel().unwrap_err().errno(), EINVAL);
    assert_eq!(h.start_concurrent_writer().unwrap_err().errno(), EINVAL);
    h.pwrite(&[3u8; 512], 0, None).unwrap();
    let mut back = [0u8; 512];
    h.pread(&mut back, 0, None).unwrap();
    assert_eq!(back, [3u8; 512]);
    // Closed (after a disconnect): refused too.
    h.shutdown(None).unwrap();
    assert_eq!(h.writer_channel().unwrap_err().errno(), EINVAL);
    drop(h);
    writer.join().unwrap().unwrap();

    let (_server, h) = connected(&["memory", "1M"]);
    h.start_concurrent_writer().unwrap();
    assert_eq!(h.writer_channel().unwrap_err().errno(), EINVAL);
}

#[test]
fn writer_channel_while_connecting() {
    if !have_nbdkit() {
        return;
    }
    // Installed as soon as the socket exists: the handshake itself goes through the thread.
    let server = Nbdkit::unix(&["memory", "1M"]);
    let h = Handle::new().unwrap();
    h.aio_connect_uri(&server.uri).unwrap();
    assert!(h.aio_is_connecting());
    let writer = h.spawn_writer_thread().unwrap();
    while h.aio_is_connecting() {
        h.poll(10_000).unwrap();
    }
    assert!(h.aio_is_ready());
    h.pwrite(&pattern(0, 8192), 8192, None).unwrap();
    let mut back = vec![0u8; 8192];
    h.pread(&mut back, 8192, None).unwrap();
    assert_eq!(back, pattern(0, 8192));
    drop(h);
    writer.join().unwrap().unwrap();
}

#[test]
fn dropping_the_channel_ends_the_connection() {
    if !have_nbdkit() {
        return;
    }
    let (_server, h) = connected(&["memory", "1M"]);
    drop(h.writer_channel().unwrap());
    // Nothing can send the requests any more: the connection is lost rather than left hanging.
    let err = h.pwrite(&[0u8; 512], 0, None).unwrap_err();
    assert_eq!(err.errno(), ESHUTDOWN, "{err}");
    assert!(err.is_fatal());
}
