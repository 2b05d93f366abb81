// Test 3: what the server told the handle: size, capabilities, block sizes, protocol.
mod common;

use common::{connected, have_nbdkit, MIB};
use nbd::{BlockSize, Handle};

#[test]
fn writable_memory_export() {
    if !have_nbdkit() {
        return;
    }
    let (_server, h) = connected(&["memory", "1M"]);
    assert_eq!(h.get_size().unwrap(), MIB);
    assert!(!h.is_read_only().unwrap());
    assert!(h.can_flush().unwrap());
    assert!(h.can_fua().unwrap());
    assert!(h.can_trim().unwrap());
    assert!(h.can_zero().unwrap());
    assert!(h.can_multi_conn().unwrap());
    assert!(h.can_cache().unwrap());
    assert!(h.can_df().unwrap());
    assert!(!h.is_rotational().unwrap());
    let _ = h.can_fast_zero().unwrap();
    assert_eq!(h.get_protocol().unwrap(), "newstyle-fixed");
    assert!(h.get_structured_replies_negotiated().unwrap());
    assert!(!h.get_tls_negotiated().unwrap());
    assert!(h.aio_is_ready() && !h.aio_is_dead() && !h.aio_is_closed());
    let flags = h.get_handshake_flags();
    assert!(flags.contains(nbd::HandshakeFlags::FIXED_NEWSTYLE));
}

#[test]
fn block_sizes_as_advertised() {
    if !have_nbdkit() {
        return;
    }
    let policy = ["blocksize-minimum=512", "blocksize-preferred=4096", "blocksize-maximum=65536"];
    let (_server, h) =
        connected(&[&["--filter=blocksize-policy", "memory", "1M"][..], &policy[..]].concat());
    let sizes: Vec<u64> = BlockSize::ALL.iter().map(|&w| h.get_block_size(w).unwrap()).collect();
    // Minimum, preferred and maximum as sent (the payload limit is the library's own).
    assert_eq!(sizes[..3], [512, 4096, 65536]);
    assert!(sizes[3] > 0);
    assert_eq!(h.get_block_size(nbd::Size::Preferred).unwrap(), 4096);
}

#[test]
fn read_only_export() {
    if !have_nbdkit() {
        return;
    }
    let (_server, h) = connected(&["-r", "memory", "1M"]);
    assert!(h.is_read_only().unwrap());
    assert!(!h.can_trim().unwrap());
    assert!(!h.can_zero().unwrap());
}

#[test]
fn meta_context() {
    if !have_nbdkit() {
        return;
    }
    let server = common::Nbdkit::unix(&["memory", "1M"]);
    let h = Handle::new().unwrap();
    h.add_meta_context(nbd::CONTEXT_BASE_ALLOCATION).unwrap();
    assert_eq!(h.get_nr_meta_contexts().unwrap(), 1);
    assert_eq!(h.get_meta_context(0).unwrap(), "base:allocation");
    h.connect_uri(&server.uri).unwrap();
    assert!(h.can_meta_context(nbd::CONTEXT_BASE_ALLOCATION).unwrap());
    assert!(!h.can_meta_context("qemu:allocation-depth").unwrap());
}

#[test]
fn export_name_and_description() {
    if !have_nbdkit() {
        return;
    }
    let server = common::Nbdkit::unix(&[
        "--filter=exportname",
        "memory",
        "1M",
        "exportname=disk",
        "exportdesc=fixed:a disk",
    ]);
    let h = Handle::new().unwrap();
    h.set_full_info(true).unwrap();
    h.set_export_name("disk").unwrap();
    h.connect_unix(server.socket.as_ref().unwrap()).unwrap();
    assert_eq!(h.get_canonical_export_name().unwrap(), "disk");
    assert_eq!(h.get_export_description().unwrap(), "a disk");
}
