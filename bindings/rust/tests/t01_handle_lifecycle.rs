// Test 1: handle lifecycle: create, settings on a new handle, raw ownership, drop.
mod common;

use nbd::Handle;

#[test]
fn create_and_drop_many() {
    for _ in 0..100 {
        let h = Handle::new().unwrap();
        assert!(h.aio_is_created());
        assert!(!h.aio_is_ready());
    }
}

#[test]
fn handle_is_send_and_sync() {
    fn assert_send_sync<T: Send + Sync>() {}
    assert_send_sync::<Handle>();
    assert_send_sync::<nbd::AioBuffer>();
    assert_send_sync::<nbd::Error>();
    // One handle shared by threads.
    let h = std::sync::Arc::new(Handle::new().unwrap());
    let threads: Vec<_> = (0..4)
        .map(|i| {
            let h = h.clone();
            std::thread::spawn(move || {
                h.set_handle_name(&format!("t{i}")).unwrap();
                h.get_handle_name().unwrap()
            })
        })
        .collect();
    for t in threads {
        assert!(t.join().unwrap().starts_with('t'));
    }
}

#[test]
fn package_and_version() {
    let h = Handle::new().unwrap();
    assert_eq!(h.get_package_name(), "nbdpp");
    assert!(h.get_version().starts_with("1.24.0+nbdpp."), "{}", h.get_version());
    assert_eq!(h.get_version_extra(), "");
    assert!(h.supports_uri());
    assert!(h.supports_vsock());
}

#[test]
fn libnbd_1_16_settings_and_new_kinds() {
    let h = Handle::new().unwrap();
    // uint64 results, no Result: the counters of a new handle are zero.
    let sent: u64 = h.stats_bytes_sent();
    assert_eq!((sent, h.stats_chunks_received()), (0, 0));
    h.set_socket_activation_name("sock1").unwrap();
    assert_eq!(h.get_socket_activation_name().unwrap(), "sock1");
    let e = h.set_socket_activation_name("bad-name").unwrap_err();
    assert_eq!(e.errno(), libc_einval());
    h.set_tls_hostname("example.com").unwrap();
    assert_eq!(h.get_tls_hostname().unwrap(), "example.com");
    h.set_request_extended_headers(false).unwrap();
    assert!(!h.get_request_extended_headers());
    // An extent64 callback (a slice of NbdExtent) is boxed, refused in this state and freed.
    let dropped = std::sync::Arc::new(());
    let held = dropped.clone();
    let e = h
        .block_status_64(512, 0, move |_ctx: &str, _off: u64, ext: &[nbd::NbdExtent], _err: &mut i32| {
            let _ = &held;
            ext.len() as i32
        }, None)
        .unwrap_err();
    assert_eq!(std::sync::Arc::strong_count(&dropped), 1, "the callback was freed: {e}");
    let x = nbd::NbdExtent { length: 4096, flags: nbd::STATE_HOLE as u64 };
    assert_eq!(std::mem::size_of_val(&x), 16);
}

fn libc_einval() -> i32 {
    22
}

#[test]
fn settings_round_trip() {
    let h = Handle::new().unwrap();
    h.set_handle_name("lifecycle").unwrap();
    assert_eq!(h.get_handle_name().unwrap(), "lifecycle");
    h.set_export_name("disk").unwrap();
    assert_eq!(h.get_export_name().unwrap(), "disk");
    assert_eq!(h.get_tls(), nbd::Tls::Disable);
    h.set_tls(nbd::Tls::Allow).unwrap();
    assert_eq!(h.get_tls(), nbd::Tls::Allow);
    let strict = h.get_strict_mode();
    assert!(strict.contains(nbd::StrictFlags::BOUNDS));
    h.set_strict_mode(strict - nbd::StrictFlags::BOUNDS).unwrap();
    assert!(!h.get_strict_mode().contains(nbd::StrictFlags::BOUNDS));
    assert_eq!(h.set_private_data(42), 0);
    assert_eq!(h.get_private_data(), 42);
    assert!(!h.connection_state().unwrap().is_empty());
}

#[test]
fn flags_behave_as_sets() {
    use nbd::CmdFlags;
    let f = CmdFlags::FUA | CmdFlags::DF;
    assert_eq!(f.bits(), 0x05);
    assert!(f.contains(CmdFlags::FUA) && !f.contains(CmdFlags::REQ_ONE));
    assert_eq!(CmdFlags::from_bits(0x100), None);
    assert_eq!(CmdFlags::from_bits_truncate(0x101), CmdFlags::FUA);
    assert_eq!(CmdFlags::all().bits(), nbd::sys::LIBNBD_CMD_FLAG_MASK);
    assert_eq!(!CmdFlags::all(), CmdFlags::empty());
    assert_eq!(format!("{f:?}"), "CmdFlags(FUA | DF)");
    assert_eq!(format!("{:?}", CmdFlags::from_bits_retain(0x101)), "CmdFlags(FUA | 0x100)");
    assert_eq!(nbd::Tls::from_c_value(2), Some(nbd::Tls::Require));
    assert_eq!(nbd::Tls::from_c_value(7), None);
    // What a bitflags type also has.
    assert_eq!(f.symmetric_difference(CmdFlags::FUA | CmdFlags::REQ_ONE).bits(), 0x0c);
    assert_eq!(f.complement(), !f);
    assert_eq!(CmdFlags::from_name("NO_HOLE"), Some(CmdFlags::NO_HOLE));
    assert_eq!(CmdFlags::from_name("no_hole"), None);
    let named: Vec<_> = f.iter_names().collect();
    assert_eq!(named, [("FUA", CmdFlags::FUA), ("DF", CmdFlags::DF)]);
    let all: Vec<u32> = CmdFlags::from_bits_retain(0x101).iter().map(CmdFlags::bits).collect();
    assert_eq!(all, [0x1, 0x100]);
    let mut g = CmdFlags::empty();
    g.extend([CmdFlags::DF, CmdFlags::FAST_ZERO]);
    assert_eq!(format!("{g:x} {g:#b} {g:o} {g:X}"), "14 0b10100 24 14");
}

#[test]
fn libnbds_type_names_are_aliases() {
    let flags: nbd::CmdFlag = nbd::CmdFlags::FUA;
    let strict: nbd::Strict = nbd::StrictFlags::BOUNDS;
    let size: nbd::Size = nbd::BlockSize::Preferred;
    assert_eq!((flags.bits(), strict.bits(), size.to_c()), (1, 4, 1));
    assert_eq!(nbd::HandshakeFlag::all(), nbd::HandshakeFlags::all());
    assert_eq!(nbd::AllowTransport::UNIX, nbd::AllowTransportFlags::UNIX);
    assert_eq!(nbd::Shutdown::ABANDON_PENDING.bits(), nbd::sys::LIBNBD_SHUTDOWN_ABANDON_PENDING);
}

#[test]
fn raw_ownership() {
    let h = Handle::new().unwrap();
    h.set_handle_name("raw").unwrap();
    let raw = h.into_raw();
    // SAFETY: raw came from into_raw and nothing else owns it.
    let h = unsafe { Handle::from_raw(raw) };
    assert_eq!(h.as_raw(), raw);
    assert_eq!(h.get_handle_name().unwrap(), "raw");
}
