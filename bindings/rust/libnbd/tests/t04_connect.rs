// Test 4 of the libnbd crate: the ways to connect, each with libnbd's crate's argument type: an
// argv (connect_command), a SocketAddr (aio_connect), an OwnedFd (connect_socket), a path.
mod support;

use std::ffi::c_int;
use std::net::{Ipv4Addr, SocketAddr};
use std::os::fd::OwnedFd;
use std::os::unix::net::UnixStream;

use libnbd::Handle;
use support::{have_nbdkit, Nbdkit, MIB};

#[test]
fn connect_command_and_subprocess_pid() {
    if !have_nbdkit() {
        return;
    }
    let nbd = Handle::new().unwrap();
    nbd.connect_command(&["nbdkit", "-s", "--exit-with-parent", "memory", "1M"]).unwrap();
    assert_eq!(nbd.get_size().unwrap(), MIB);
    let pid: u64 = nbd.get_subprocess_pid().unwrap();
    let cmdline = std::fs::read(format!("/proc/{pid}/cmdline")).unwrap();
    assert!(cmdline.starts_with(b"nbdkit\0"), "{:?}", String::from_utf8_lossy(&cmdline));
}

#[test]
fn aio_connect_to_a_socket_address() {
    if !have_nbdkit() {
        return;
    }
    let server = Nbdkit::tcp(&["memory", "1M"]);
    let nbd = Handle::new().unwrap();
    nbd.aio_connect(SocketAddr::from((Ipv4Addr::LOCALHOST, server.port.unwrap()))).unwrap();
    while !nbd.aio_is_ready() {
        assert!(!nbd.aio_is_dead());
        nbd.poll(-1).unwrap();
    }
    assert_eq!(nbd.get_size().unwrap(), MIB);
}

#[test]
fn connect_socket_and_unix_path() {
    if !have_nbdkit() {
        return;
    }
    let server = Nbdkit::unix(&["memory", "1M"]);
    let socket = server.socket.clone().unwrap();
    let nbd = Handle::new().unwrap();
    let stream = UnixStream::connect(&socket).unwrap();
    nbd.connect_socket(OwnedFd::from(stream)).unwrap();
    assert_eq!(nbd.get_size().unwrap(), MIB);
    // A second connection is refused: the handle is not newly created any more.
    let err = nbd.connect_socket(OwnedFd::from(UnixStream::connect(&socket).unwrap()));
    assert_eq!(err.unwrap_err().errno(), Some(support::EINVAL));

    let other = Handle::new().unwrap();
    other.connect_unix(socket).unwrap();
    let mut buf = [0u8; 512];
    other.pread(&mut buf, 0, None::<libnbd::CmdFlag>).unwrap();
    let cookie = other.aio_zero(512, 0, None::<fn(&mut c_int) -> c_int>, None).unwrap();
    while !other.aio_command_completed(cookie.0).unwrap() {
        other.poll(-1).unwrap();
    }
}
