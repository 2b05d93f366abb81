// Test 9: error mapping: the binding's Error carries the C library's errno and message and tells
// recoverable failures (wrong state, bad argument, a server error) from fatal ones.
mod common;

use std::panic::{self, AssertUnwindSafe};

use common::{connected, have_nbdkit, EINVAL, EIO, ENOTCONN, ERANGE};
use nbd::{Error, Handle};

#[test]
fn call_before_connecting_is_enotconn() {
    let h = Handle::new().unwrap();
    let err = h.pread(&mut [0u8; 512], 0, None).unwrap_err();
    assert_eq!(err.errno(), ENOTCONN);
    assert!(err.message().starts_with("nbd_pread: "), "{err}");
    assert!(err.is_recoverable() && !err.is_fatal());
    assert_eq!(err.to_string(), err.message());
    let io: std::io::Error = err.into();
    assert_eq!(io.kind(), std::io::ErrorKind::NotConnected);
    assert_eq!(io.raw_os_error(), Some(ENOTCONN)); // the errno survives the conversion
}

#[test]
fn error_without_errno_keeps_its_message_in_io_error() {
    let io: std::io::Error = Error::new(0, "nbd_x: no errno here").into();
    assert_eq!(io.raw_os_error(), None);
    assert_eq!(io.kind(), std::io::ErrorKind::Other);
    assert_eq!(io.to_string(), "nbd_x: no errno here");
}

#[test]
fn call_in_the_wrong_state_is_einval() {
    if !have_nbdkit() {
        return;
    }
    let (_server, h) = connected(&["memory", "1M"]);
    let err = h.set_export_name("other").unwrap_err();
    assert_eq!(err.errno(), EINVAL);
    assert!(err.message().starts_with("nbd_set_export_name: "), "{err}");
    assert!(!err.is_fatal());
    let err = h.connect_uri("nbd://localhost").unwrap_err();
    assert_eq!(err.errno(), EINVAL);
    // Recoverable: the handle still works.
    h.pread(&mut [0u8; 512], 0, None).unwrap();
}

#[test]
fn bad_arguments() {
    let h = Handle::new().unwrap();
    let err = h.set_export_name("a\0b").unwrap_err();
    assert_eq!(err.errno(), EINVAL);
    assert_eq!(err.message(), "nbd_set_export_name: export_name: contains a NUL byte");
    let err = h.connect_command(&["nbdkit", "bad\0arg"]).unwrap_err();
    assert_eq!(err.errno(), EINVAL);
    assert!(h.aio_is_created());
    let err = h.set_export_name(&"x".repeat(5000)).unwrap_err();
    assert!(err.message().starts_with("nbd_set_export_name: "));
}

#[test]
fn request_too_large_is_erange() {
    if !have_nbdkit() {
        return;
    }
    let (_server, h) = connected(&["memory", "128M"]);
    let mut big = vec![0u8; 65 * 1024 * 1024];
    let err = h.pread(&mut big, 0, None).unwrap_err();
    assert_eq!(err.errno(), ERANGE);
    assert!(!err.is_fatal());
}

#[test]
fn server_error_is_passed_through() {
    if !have_nbdkit() {
        return;
    }
    let (_server, h) =
        connected(&["--filter=error", "memory", "1M", "error=EIO", "error-pread-rate=100%"]);
    let err = h.pread(&mut [0u8; 512], 0, None).unwrap_err();
    assert_eq!(err.errno(), EIO);
    assert!(err.message().starts_with("nbd_pread: "), "{err}");
    assert!(err.is_recoverable());
    // Only reads fail; the connection is intact.
    h.pwrite(&[1u8; 512], 0, None).unwrap();
    assert!(h.aio_is_ready());
}

#[test]
fn lost_server_is_fatal() {
    if !have_nbdkit() {
        return;
    }
    let h = Handle::new().unwrap();
    h.connect_command(&["nbdkit", "-s", "--exit-with-parent", "memory", "1M"]).unwrap();
    h.kill_subprocess(9).unwrap();
    let err: Error = loop {
        // The first request may still be written into the socket buffer; its reply never comes.
        match h.pread(&mut [0u8; 512], 0, None) {
            Err(e) => break e,
            Ok(()) => continue,
        }
    };
    assert!(err.is_fatal(), "{err}");
    assert!(h.aio_is_dead());
    let err = h.pread(&mut [0u8; 512], 0, None).unwrap_err();
    assert_eq!(err.errno(), EINVAL);
    assert!(err.is_fatal());
}

#[test]
fn callback_panic_is_resumed_by_the_call() {
    if !have_nbdkit() {
        return;
    }
    let (_server, h) = connected(&["memory", "1M"]);
    let caught = panic::catch_unwind(AssertUnwindSafe(|| {
        let mut buf = [0u8; 512];
        let _ =
            h.pread_structured(&mut buf, 0, |_: &[u8], _, _, _: &mut i32| panic!("boom"), None);
    }));
    let payload = caught.unwrap_err();
    assert_eq!(payload.downcast_ref::<&str>(), Some(&"boom"));
    // The handle is fine afterwards, and the next call does not see the old panic.
    h.pread(&mut [0u8; 512], 0, None).unwrap();
}
