// Test 7: option mode: listing exports and meta contexts, asking about one, then going.
mod common;

use std::sync::{Arc, Mutex};

use common::{have_nbdkit, Nbdkit, EINVAL, MIB};
use nbd::Handle;

fn server() -> Nbdkit {
    Nbdkit::unix(&[
        "--filter=exportname",
        "memory",
        "1M",
        "exportname=a",
        "exportname=b",
        "exportdesc=fixed:memory",
        "exportname-list=explicit",
    ])
}

fn negotiating(server: &Nbdkit) -> Handle {
    let h = Handle::new().unwrap();
    h.set_opt_mode(true).unwrap();
    assert!(h.get_opt_mode());
    h.connect_uri(&server.uri).unwrap();
    assert!(h.aio_is_negotiating());
    h
}

#[test]
fn list_info_and_go() {
    if !have_nbdkit() {
        return;
    }
    let server = server();
    let h = negotiating(&server);
    let names = Arc::new(Mutex::new(Vec::new()));
    let n = names.clone();
    let count = h
        .opt_list(move |name: &str, description: &str| {
            n.lock().unwrap().push((name.to_owned(), description.to_owned()));
            0
        })
        .unwrap();
    assert_eq!(count, 2);
    let names = names.lock().unwrap().clone();
    assert_eq!(
        names,
        [("a".to_owned(), "memory".to_owned()), ("b".to_owned(), "memory".to_owned())]
    );

    let contexts = Arc::new(Mutex::new(Vec::new()));
    let c = contexts.clone();
    h.add_meta_context(nbd::CONTEXT_BASE_ALLOCATION).unwrap();
    let n = h
        .opt_list_meta_context(move |name: &str| {
            c.lock().unwrap().push(name.to_owned());
            0
        })
        .unwrap();
    assert_eq!(n, 1);
    assert_eq!(*contexts.lock().unwrap(), ["base:allocation"]);

    h.set_export_name("b").unwrap();
    h.opt_info().unwrap();
    assert_eq!(h.get_size().unwrap(), MIB);
    assert!(h.aio_is_negotiating());
    h.opt_go().unwrap();
    assert!(h.aio_is_ready());
    assert_eq!(h.get_export_name().unwrap(), "b");
    h.pwrite(&[7; 512], 0, None).unwrap();
    // Option calls belong to the negotiating state.
    assert_eq!(h.opt_go().unwrap_err().errno(), EINVAL);
}

#[test]
fn aio_options_and_abort() {
    if !have_nbdkit() {
        return;
    }
    let server = server();
    let h = negotiating(&server);
    let names = Arc::new(Mutex::new(Vec::new()));
    let n = names.clone();
    h.aio_opt_list(
        move |name: &str, _: &str| {
            n.lock().unwrap().push(name.to_owned());
            0
        },
        None,
    )
    .unwrap();
    while h.aio_is_connecting() {
        h.poll(-1).unwrap();
    }
    assert_eq!(names.lock().unwrap().len(), 2);
    assert!(h.aio_is_negotiating());
    h.opt_abort().unwrap();
    assert!(h.aio_is_closed());
}
