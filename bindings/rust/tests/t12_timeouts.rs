// Test 12: issue 21 in the synchronous API: a read that outlasts nbd_set_timeout fails with
// ETIMEDOUT and nbd_interrupt from another thread fails one with ECANCELED, the handle going on
// in both cases; and nbd_set_reconnect_delay carries a handle over a server killed with SIGKILL
// and started again on the same socket.
mod common;

use std::io::ErrorKind;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use common::{connected, have_nbdkit, pattern, Nbdkit, Restartable, ECANCELED, ETIMEDOUT, MIB};

/// A server whose reads take 2 s: far longer than any of these tests waits for one.
const SLOW_READS: [&str; 4] = ["--filter=delay", "memory", "1M", "rdelay=2"];

#[test]
fn a_read_past_the_timeout_fails_with_etimedout() {
    if !have_nbdkit() {
        return;
    }
    // Reads take 500 ms; the buffer is not zeroed when the read is issued, so that any write
    // into it shows.
    let server = Nbdkit::unix(&["--filter=delay", "memory", "1M", "rdelay=500ms"]);
    let h = nbd::Handle::new().unwrap();
    h.set_pread_initialize(false).unwrap();
    h.connect_uri(&server.uri).unwrap();
    h.set_timeout(100).unwrap();
    assert_eq!(h.get_timeout(), 100);
    let mut buf = vec![0xeeu8; 4096];
    let start = Instant::now();
    let e = h.pread(&mut buf, 0, None).unwrap_err();
    assert!(start.elapsed() < Duration::from_millis(400), "{:?}", start.elapsed());
    assert_eq!(e.errno(), ETIMEDOUT, "{e:?}");
    assert_eq!(e.kind(), ErrorKind::TimedOut);
    assert!(e.is_recoverable(), "{e:?}");
    // The read is abandoned, not cancelled: it stays in flight until its reply comes, and
    // the handle goes on meanwhile (writes are not delayed).
    assert_eq!(h.aio_in_flight().unwrap(), 1);
    h.pwrite(&pattern(0, 4096), 8192, None).unwrap();
    h.flush(None).unwrap();
    // Its reply, when it comes, is thrown away: the caller's buffer is never written.
    while h.aio_in_flight().unwrap() > 0 {
        assert_eq!(h.poll(5000).unwrap(), 1);
    }
    assert!(buf.iter().all(|&b| b == 0xee), "the abandoned read wrote into the caller's buffer");
}

#[test]
fn interrupt_from_another_thread_fails_a_blocked_read() {
    if !have_nbdkit() {
        return;
    }
    let (_server, h) = connected(&SLOW_READS);
    let done = AtomicBool::new(false);
    let start = Instant::now();
    let e = std::thread::scope(|s| {
        let reader = s.spawn(|| {
            let mut buf = vec![0u8; 4096];
            let r = h.pread(&mut buf, 0, None);
            done.store(true, Ordering::SeqCst);
            r
        });
        // An interrupt reaches only a call in progress, so it is repeated until the read has
        // begun and returned.
        while !done.load(Ordering::SeqCst) {
            h.interrupt().unwrap();
            std::thread::sleep(Duration::from_millis(5));
        }
        reader.join().unwrap().unwrap_err()
    });
    assert!(start.elapsed() < Duration::from_millis(1500), "{:?}", start.elapsed());
    assert_eq!(e.errno(), ECANCELED, "{e:?}");
    assert!(e.is_recoverable(), "{e:?}");
    assert_eq!(h.aio_in_flight().unwrap(), 1);
    h.pwrite(&pattern(0, 512), 0, None).unwrap();
    // An interrupt with no call in progress fails nothing later.
    h.interrupt().unwrap();
    h.flush(None).unwrap();
}

#[test]
fn a_restarted_server_is_connected_again() {
    if !have_nbdkit() {
        return;
    }
    let mut server = Restartable::file(MIB, &[], &[]);
    let h = nbd::Handle::new().unwrap();
    h.set_reconnect_delay(5000).unwrap();
    assert_eq!(h.get_reconnect_delay(), 5000);
    h.connect_uri(&server.uri).unwrap();
    let before = pattern(0, 65536);
    h.pwrite(&before, 0, None).unwrap();
    assert_eq!(h.stats_reconnections(), 0);

    server.restart();
    // The next commands find the connection gone, connect again and are sent again.
    let after = pattern(65536, 65536);
    h.pwrite(&after, 65536, None).unwrap();
    let mut back = vec![0u8; 131072];
    h.pread(&mut back, 0, None).unwrap();
    assert_eq!(&back[..65536], &before[..]);
    assert_eq!(&back[65536..], &after[..]);
    assert_eq!(h.stats_reconnections(), 1);
    assert!(h.aio_is_ready());
    h.shutdown(None).unwrap();
}
