// Test 2: every way to connect: URI, Unix socket, TCP, an open socket, a socket address, a
// server command and systemd socket activation.
mod common;

use std::io::{Read, Write};
use std::panic::{self, AssertUnwindSafe};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::os::unix::net::UnixStream;
use std::time::Duration;

use common::{connected, have_nbdkit, Nbdkit, EINVAL, MIB};
use nbd::Handle;

fn check(h: &Handle) {
    assert!(h.aio_is_ready());
    assert_eq!(h.get_size().unwrap(), MIB);
}

#[test]
fn uri() {
    if !have_nbdkit() {
        return;
    }
    let server = Nbdkit::unix(&["memory", "1M"]);
    let h = Handle::new().unwrap();
    h.connect_uri(&server.uri).unwrap();
    check(&h);
    let uri = h.get_uri().unwrap();
    assert!(uri.starts_with("nbd+unix:///"), "{uri}");
    assert!(uri.ends_with(&server.socket.as_ref().unwrap().display().to_string()), "{uri}");
}

#[test]
fn unix_socket() {
    if !have_nbdkit() {
        return;
    }
    let server = Nbdkit::unix(&["memory", "1M"]);
    let h = Handle::new().unwrap();
    h.connect_unix(server.socket.as_ref().unwrap()).unwrap();
    check(&h);
}

#[test]
fn tcp() {
    if !have_nbdkit() {
        return;
    }
    let server = Nbdkit::tcp(&["memory", "1M"]);
    let h = Handle::new().unwrap();
    h.connect_tcp("127.0.0.1", &server.port.unwrap().to_string()).unwrap();
    check(&h);
    let h = Handle::new().unwrap();
    h.connect_uri(&format!("nbd://127.0.0.1:{}", server.port.unwrap())).unwrap();
    check(&h);
}

#[test]
fn open_socket() {
    if !have_nbdkit() {
        return;
    }
    let server = Nbdkit::unix(&["memory", "1M"]);
    let sock = std::os::unix::net::UnixStream::connect(server.socket.as_ref().unwrap()).unwrap();
    let h = Handle::new().unwrap();
    h.connect_socket(sock.into()).unwrap();
    check(&h);
}

// A socket the call refuses (the handle is not newly created) is the binding's to close, and it
// does: the peer reads end of file.  The handle is unharmed.
#[test]
fn refused_socket_is_closed() {
    if !have_nbdkit() {
        return;
    }
    let (_server, h) = connected(&["memory", "1M"]);
    let (ours, mut peer) = UnixStream::pair().unwrap();
    let err = h.connect_socket(ours.into()).unwrap_err();
    assert_eq!(err.errno(), EINVAL);
    assert!(err.message().starts_with("nbd_connect_socket: "), "{err}");
    assert_eq!(read_to_end_of_file(&mut peer), 0, "the refused socket is still open");
    h.pread(&mut [0u8; 512], 0, None).unwrap();
}

// A socket taken before the handshake failed is the handle's: the call fails, the handle is
// dead and keeps the socket until it is dropped (the binding closes nothing itself).
#[test]
fn socket_taken_by_a_failed_handshake_is_the_handles() {
    let (ours, mut peer) = UnixStream::pair().unwrap();
    peer.write_all(b"not an NBD greeting at all").unwrap();
    let h = Handle::new().unwrap();
    let err = h.connect_socket(ours.into()).unwrap_err();
    assert!(err.message().starts_with("nbd_connect_socket: "), "{err}");
    assert!(h.aio_is_dead());
    assert!(!h.aio_is_created());
    drop(h);
    read_to_end_of_file(&mut peer);
}

// A debug callback that panics while connect_socket runs: the panic comes out of the call, and
// the socket the handle took stays the handle's (the binding does not close it while
// unwinding), so the connection still works.
#[test]
fn socket_stays_the_handles_when_a_callback_panics() {
    if !have_nbdkit() {
        return;
    }
    let server = Nbdkit::unix(&["memory", "1M"]);
    let sock = UnixStream::connect(server.socket.as_ref().unwrap()).unwrap();
    let h = Handle::new().unwrap();
    let armed = Arc::new(AtomicBool::new(false));
    let trigger = Arc::clone(&armed);
    h.set_debug_callback(move |_: &str, _: &str| -> i32 {
        if trigger.load(Ordering::SeqCst) {
            panic!("debug callback");
        }
        0
    })
    .unwrap();
    h.set_debug(true).unwrap();
    armed.store(true, Ordering::SeqCst);
    let caught = panic::catch_unwind(AssertUnwindSafe(|| h.connect_socket(sock.into())));
    armed.store(false, Ordering::SeqCst);
    assert_eq!(caught.unwrap_err().downcast_ref::<&str>(), Some(&"debug callback"));
    check(&h);
    h.pread(&mut [0u8; 512], 0, None).unwrap();
}

// Reads what the other end sends until end of file: the bytes read (a read that does not end
// within 30 s fails the test instead of hanging it).
fn read_to_end_of_file(peer: &mut UnixStream) -> usize {
    peer.set_read_timeout(Some(Duration::from_secs(30))).unwrap();
    let mut all = Vec::new();
    peer.read_to_end(&mut all).expect("end of file");
    all.len()
}

#[test]
fn socket_address() {
    if !have_nbdkit() {
        return;
    }
    let server = Nbdkit::tcp(&["memory", "1M"]);
    let addr: std::net::SocketAddr =
        format!("127.0.0.1:{}", server.port.unwrap()).parse().unwrap();
    let h = Handle::new().unwrap();
    h.aio_connect(&addr.into()).unwrap();
    while !h.aio_is_ready() {
        assert!(!h.aio_is_dead());
        h.poll(-1).unwrap();
    }
    check(&h);

    let server = Nbdkit::unix(&["memory", "1M"]);
    let h = Handle::new().unwrap();
    h.aio_connect(&nbd::SockAddr::unix(server.socket.as_ref().unwrap()).unwrap()).unwrap();
    while h.aio_is_connecting() {
        h.poll(-1).unwrap();
    }
    check(&h);
}

#[test]
fn command() {
    if !have_nbdkit() {
        return;
    }
    let h = Handle::new().unwrap();
    h.connect_command(&["nbdkit", "-s", "--exit-with-parent", "memory", "1M"]).unwrap();
    check(&h);
}

#[test]
fn systemd_socket_activation() {
    if !have_nbdkit() {
        return;
    }
    let h = Handle::new().unwrap();
    h.connect_systemd_socket_activation(&["nbdkit", "--exit-with-parent", "memory", "1M"])
        .unwrap();
    check(&h);
}
