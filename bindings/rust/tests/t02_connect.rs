// Test 2: every way to connect: URI, Unix socket, TCP, an open socket, a socket address, a
// server command and systemd socket activation.
mod common;

use common::{have_nbdkit, Nbdkit, MIB};
use nbd::Handle;

fn check(h: &Handle) {
    assert!(h.aio_is_ready());
    assert_eq!(h.get_size().unwrap(), MIB as i64);
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
