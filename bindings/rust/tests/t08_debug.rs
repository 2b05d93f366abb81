// Test 8: debug messages through a callback, replacing and clearing it.
mod common;

use std::sync::{Arc, Mutex};

use common::{have_nbdkit, DropCounter, Nbdkit};
use nbd::Handle;

#[test]
fn debug_callback_sees_calls() {
    if !have_nbdkit() {
        return;
    }
    let server = Nbdkit::unix(&["memory", "1M"]);
    let h = Handle::new().unwrap();
    let messages = Arc::new(Mutex::new(Vec::new()));
    let m = messages.clone();
    h.set_debug_callback(move |context: &str, msg: &str| {
        m.lock().unwrap().push((context.to_owned(), msg.to_owned()));
        0
    })
    .unwrap();
    h.set_debug(true).unwrap();
    assert!(h.get_debug());
    h.connect_uri(&server.uri).unwrap();
    h.pread(&mut [0u8; 512], 0, None).unwrap();
    let messages = messages.lock().unwrap();
    assert!(messages.iter().any(|(c, _)| c == "nbd_connect_uri"), "{messages:?}");
    assert!(messages.iter().any(|(c, m)| c == "nbd_pread" && m.starts_with("enter:")));
}

#[test]
fn replace_and_clear_free_the_old_callback() {
    let h = Handle::new().unwrap();
    let counter = DropCounter::new();
    let first = counter.token();
    h.set_debug_callback(move |_: &str, _: &str| {
        let _ = &first;
        0
    })
    .unwrap();
    assert_eq!(counter.dropped(), 0);
    let second = counter.token();
    h.set_debug_callback(move |_: &str, _: &str| {
        let _ = &second;
        0
    })
    .unwrap();
    assert_eq!(counter.dropped(), 1);
    h.clear_debug_callback().unwrap();
    assert_eq!(counter.dropped(), 2);
    let third = counter.token();
    h.set_debug_callback(move |_: &str, _: &str| {
        let _ = &third;
        0
    })
    .unwrap();
    drop(h);
    assert_eq!(counter.dropped(), 3);
}

#[test]
fn debug_off_is_silent() {
    let h = Handle::new().unwrap();
    let messages = Arc::new(Mutex::new(0usize));
    let m = messages.clone();
    h.set_debug(false).unwrap();
    h.set_debug_callback(move |_: &str, _: &str| {
        *m.lock().unwrap() += 1;
        0
    })
    .unwrap();
    h.set_export_name("quiet").unwrap();
    assert_eq!(*messages.lock().unwrap(), 0);
}
