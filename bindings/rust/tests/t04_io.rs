// Test 4: synchronous reads and writes, zeroing, trimming and flushing, with the data checked.
mod common;

use std::sync::{Arc, Mutex};

use common::{connected, have_nbdkit, pattern};
use nbd::CmdFlags;

#[test]
fn write_then_read_back() {
    if !have_nbdkit() {
        return;
    }
    let (_server, h) = connected(&["memory", "1M"]);
    let data = pattern(4096, 65536);
    h.pwrite(&data, 4096, None).unwrap();
    h.pwrite(&data[..512], 200_000, CmdFlags::FUA).unwrap();
    let mut back = vec![0u8; 65536];
    h.pread(&mut back, 4096, None).unwrap();
    assert_eq!(back, data);
    let mut back = vec![0u8; 512];
    h.pread(&mut back, 200_000, None).unwrap();
    assert_eq!(back, &data[..512]);
    h.flush(None).unwrap();
    h.cache(4096, 0, None).unwrap();
}

#[test]
fn zero_and_trim() {
    if !have_nbdkit() {
        return;
    }
    let (_server, h) = connected(&["memory", "1M"]);
    let data = pattern(0, 131072);
    h.pwrite(&data, 0, None).unwrap();
    h.zero(4096, 8192, None).unwrap();
    h.trim(4096, 65536, None).unwrap();
    h.zero(4096, 100_000, CmdFlags::NO_HOLE).unwrap();
    let mut back = vec![0xffu8; 131072];
    h.pread(&mut back, 0, None).unwrap();
    let mut expected = data.clone();
    for range in [8192..12288, 65536..69632, 100_000..104_096] {
        expected[range].fill(0);
    }
    assert_eq!(back, expected);
}

#[test]
fn structured_read_reports_chunks() {
    if !have_nbdkit() {
        return;
    }
    let (_server, h) = connected(&["memory", "1M"]);
    let data = pattern(0, 8192);
    h.pwrite(&data, 0, None).unwrap();
    let seen = Arc::new(Mutex::new(Vec::new()));
    let record = seen.clone();
    let mut back = vec![0u8; 8192];
    h.pread_structured(
        &mut back,
        0,
        move |buf: &[u8], offset, status, error: &mut i32| {
            assert_eq!(*error, 0);
            record.lock().unwrap().push((offset, buf.len(), status));
            0
        },
        None,
    )
    .unwrap();
    assert_eq!(back, data);
    let seen = seen.lock().unwrap();
    assert!(!seen.is_empty());
    assert_eq!(seen.iter().map(|c| c.1).sum::<usize>(), 8192);
    assert!(seen.iter().all(|c| c.2 == nbd::READ_DATA || c.2 == nbd::READ_HOLE));
}
