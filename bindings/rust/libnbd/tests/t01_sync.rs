// Test 1 of the libnbd crate: synchronous calls in libnbd's crate's API against nbdkit: sizes
// as u64, a data round trip, byte strings, flag sets, and errors (errno, Recoverable or Fatal).
mod support;

use libnbd::{CmdFlag, Error, ErrorKind, FatalErrorKind, Handle, Size, Strict};
use support::{connected, have_nbdkit, pattern, EINVAL, ENOTCONN, MIB};

#[test]
fn size_and_round_trip() {
    if !have_nbdkit() {
        return;
    }
    let (_server, nbd) = connected(&["memory", "1M"]);
    let size: u64 = nbd.get_size().unwrap();
    assert_eq!(size, MIB);
    let out = pattern(8192, 4096);
    nbd.pwrite(&out, 8192, Some(CmdFlag::FUA)).unwrap();
    nbd.pwrite(&out[..512], 65536, None).unwrap();
    let mut back = [0u8; 4096];
    nbd.pread(&mut back, 8192, None).unwrap();
    assert_eq!(&back[..], &out[..]);
    let mut sector = vec![0u8; 512];
    nbd.pread(&mut sector, 65536, Some(CmdFlag::empty())).unwrap();
    assert_eq!(sector, out[..512]);
    nbd.flush(None).unwrap();
    nbd.zero(512, 65536, None).unwrap();
    nbd.pread(&mut sector, 65536, None).unwrap();
    assert!(sector.iter().all(|&b| b == 0));
    assert!(nbd.can_fua().unwrap() && !nbd.is_read_only().unwrap());
    assert_eq!(nbd.get_protocol().unwrap(), b"newstyle-fixed");
    assert_eq!(nbd.get_package_name(), b"nbdpp");
    assert!(nbd.connection_state().unwrap().starts_with(b"READY: "));
    assert!(nbd.stats_bytes_sent() > 4096);
    nbd.shutdown(None).unwrap();
    assert!(nbd.aio_is_closed());
}

#[test]
fn block_sizes_and_strings() {
    if !have_nbdkit() {
        return;
    }
    let policy = "blocksize-preferred=4096";
    let (_server, nbd) =
        connected(&["--filter=blocksize-policy", "memory", "1M", "blocksize-minimum=512", policy]);
    assert_eq!(nbd.get_block_size(Size::Minimum).unwrap(), 512u64);
    assert_eq!(nbd.get_block_size(Size::Preferred).unwrap(), 4096u64);
    // Strings in and out are bytes; not UTF-8 is fine.
    let nbd = Handle::new().unwrap();
    nbd.set_export_name(b"caf\xe9".to_vec()).unwrap();
    assert_eq!(nbd.get_export_name().unwrap(), b"caf\xe9");
    nbd.set_handle_name("h1").unwrap();
    assert_eq!(nbd.get_handle_name().unwrap(), b"h1".to_vec());
    // A Result here, as in libnbd's crate, although the call cannot fail.
    let requested: libnbd::Result<bool> = nbd.get_request_meta_context();
    assert!(requested.unwrap());
}

#[test]
fn flag_sets() {
    let both = CmdFlag::FUA | CmdFlag::DF;
    assert_eq!(both.bits(), 0x1 | 0x4);
    assert!(both.contains(CmdFlag::DF) && !both.contains(CmdFlag::REQ_ONE));
    assert_eq!(both & CmdFlag::FUA, CmdFlag::FUA);
    assert!(CmdFlag::empty().is_empty() && !both.is_empty());
    assert_eq!(CmdFlag::from_bits(0x4), Some(CmdFlag::DF));
    assert_eq!(CmdFlag::from_bits(0x1000), None);
    assert_eq!(CmdFlag::from_bits_truncate(0xffff_ffff), CmdFlag::all());
    assert_eq!(CmdFlag::all().bits(), 0x3f);
    assert_eq!(libnbd::Shutdown::ABANDON_PENDING.bits(), 0x10000);
    assert_eq!(libnbd::HandshakeFlag::all().bits(), 3);
    assert_eq!(libnbd::AllowTransport::UNIX.bits(), 2);
    // The settings take and give the same types.
    let nbd = Handle::new().unwrap();
    let strict = nbd.get_strict_mode();
    assert!(strict.contains(Strict::BOUNDS));
    nbd.set_strict_mode(strict - Strict::BOUNDS).unwrap();
    assert_eq!(nbd.get_strict_mode(), strict - Strict::BOUNDS);
    nbd.set_handshake_flags(libnbd::HandshakeFlag::empty()).unwrap();
    assert!(nbd.get_handshake_flags().is_empty());
    nbd.set_tls(libnbd::Tls::Allow).unwrap();
    assert_eq!(nbd.get_tls(), libnbd::Tls::Allow);
    // An unknown flag reaches the library, which refuses it.
    let err = nbd.set_handshake_flags(libnbd::HandshakeFlag::from_bits_retain(0x100)).unwrap_err();
    assert_eq!(err.errno(), Some(EINVAL));
}

#[test]
fn errors_tell_recoverable_from_fatal() {
    // A call in the wrong state: recoverable, with the library's errno and message.
    let nbd = Handle::new().unwrap();
    let mut buf = [0u8; 512];
    let err = nbd.pread(&mut buf, 0, None).unwrap_err();
    assert!(err.is_recoverable() && !err.is_fatal());
    assert_eq!(err.errno(), Some(ENOTCONN));
    match &err {
        Error::Recoverable(ErrorKind::WithErrno { errno, description }) => {
            assert_eq!(errno.0, ENOTCONN);
            assert!(description.starts_with("nbd_pread: "), "{description}");
        }
        other => panic!("expected Recoverable(WithErrno), got {other:?}"),
    }
    let text = err.to_string();
    assert!(text.starts_with("Errno: Transport endpoint is not connected: nbd_pread: "), "{text}");
    // A NUL byte in a string argument, caught before the call.
    match nbd.connect_uri("nbd://a\0b") {
        Err(Error::Recoverable(ErrorKind::WithoutErrno { description })) => {
            assert!(description.contains("nul byte"), "{description}")
        }
        other => panic!("expected Recoverable(WithoutErrno), got {other:?}"),
    }
    // A failed connection leaves the handle dead: fatal.
    let dir = support::TempDir::new();
    let err = nbd.connect_unix(dir.path().join("no-such-socket")).unwrap_err();
    assert!(err.is_fatal(), "{err:?}");
    assert_eq!(err.errno(), Some(2)); // ENOENT
    assert!(err.to_string().starts_with("Fatal: NBD handle is dead: Errno: "), "{err}");
    match err.to_fatal() {
        FatalErrorKind::Libnbd(kind) => assert_eq!(kind.errno(), Some(2)),
        other => panic!("expected Libnbd, got {other:?}"),
    }
    assert!(nbd.aio_is_dead());
    // The conversions libnbd's crate has.
    let io: Error = std::io::Error::from_raw_os_error(EINVAL).into();
    assert!(io.is_fatal() && io.errno() == Some(EINVAL));
    assert_eq!(ErrorKind::from_errno(EINVAL).errno(), Some(EINVAL));
    let text: Error = String::from("just text").into();
    assert_eq!((text.errno(), text.to_string()), (None, "just text".to_owned()));
}

#[test]
fn out_of_range_read_is_recoverable() {
    if !have_nbdkit() {
        return;
    }
    let (_server, nbd) = connected(&["memory", "1M"]);
    let mut buf = [0u8; 1024];
    let err = nbd.pread(&mut buf, MIB - 512, None).unwrap_err();
    assert_eq!(err.errno(), Some(EINVAL));
    assert!(err.is_recoverable());
    nbd.pread(&mut buf, MIB - 1024, None).unwrap();
}
