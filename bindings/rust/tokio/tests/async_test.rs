// async_test.rs: nbd_tokio::AsyncHandle against nbdkit: hundreds of reads and writes in flight
// with their data checked, futures dropped mid-read (the buffer stays leased, the handle goes
// on), the server killed mid-request (every future resolves with a fatal error) or killed and
// started again under a handle that reconnects (every future resolves Ok), connect errors,
// option mode, and the handle dropped with commands in flight.  The ctest rust_tokio_valgrind
// runs the same tests under memcheck.
#[path = "../../tests/common/mod.rs"]
mod common;

use std::future::{poll_fn, Future};
use std::pin::Pin;
use std::process::Command;
use std::sync::{Arc, Mutex};
use std::task::Poll;
use std::time::Duration;

use common::{have_nbdkit, pattern, DropCounter, Nbdkit, Restartable, EINVAL, EIO, ENOTCONN, MIB};
use nbd::{AioBuffer, CmdFlags, Error, NbdExtent};
use nbd_tokio::AsyncHandle;

const ENOENT: i32 = 2;
const EPIPE: i32 = 32;
const ECONNRESET: i32 = 104;
const ECONNREFUSED: i32 = 111;
const ECANCELED: i32 = 125;

/// Long enough for anything these tests wait for to happen, even under valgrind.
const PATIENCE: Duration = Duration::from_secs(60);

async fn connected(args: &[&str]) -> (Nbdkit, AsyncHandle) {
    let server = Nbdkit::unix(args);
    let h = AsyncHandle::new().unwrap();
    h.connect_uri(&server.uri).await.unwrap();
    (server, h)
}

/// The same, with the base:allocation context negotiated for block status.
async fn connected_for_status(args: &[&str]) -> (Nbdkit, AsyncHandle) {
    let server = Nbdkit::unix(args);
    let h = AsyncHandle::new().unwrap();
    h.handle().add_meta_context(nbd::CONTEXT_BASE_ALLOCATION).unwrap();
    h.connect_uri(&server.uri).await.unwrap();
    (server, h)
}

/// Runs the futures together; `issued` runs once each of them has been polled once, that is
/// once every command has been issued.
async fn join_all<F: Future>(futures: Vec<F>, issued: impl FnOnce()) -> Vec<F::Output> {
    let mut futures: Vec<Pin<Box<F>>> = futures.into_iter().map(Box::pin).collect();
    let mut outputs: Vec<Option<F::Output>> = futures.iter().map(|_| None).collect();
    let mut issued = Some(issued);
    poll_fn(|cx| {
        for (f, out) in futures.iter_mut().zip(outputs.iter_mut()) {
            if out.is_none() {
                if let Poll::Ready(v) = f.as_mut().poll(cx) {
                    *out = Some(v);
                }
            }
        }
        if let Some(issued) = issued.take() {
            issued();
        }
        if outputs.iter().all(Option::is_some) {
            Poll::Ready(())
        } else {
            Poll::Pending
        }
    })
    .await;
    outputs.into_iter().map(Option::unwrap).collect()
}

/// Polls f once: issues its command.
async fn poll_once<F: Future + Unpin>(f: &mut F) -> Option<F::Output> {
    poll_fn(|cx| {
        Poll::Ready(match Pin::new(&mut *f).poll(cx) {
            Poll::Ready(v) => Some(v),
            Poll::Pending => None,
        })
    })
    .await
}

/// Kills the server process whose pid nbdkit wrote to `pidfile` (with --run, the child that
/// Nbdkit started runs the command, and the server is its child).
fn sigkill(pidfile: &std::path::Path) {
    let pid = std::fs::read_to_string(pidfile).unwrap();
    let status = Command::new("kill").args(["-KILL", pid.trim()]).status().unwrap();
    assert!(status.success());
}

/// The connection was lost: the error that ended it, fatal.
fn assert_lost(e: &Error) {
    assert!(e.is_fatal(), "{e:?}");
    assert!([ENOTCONN, ECONNRESET, EPIPE].contains(&e.errno()), "{e:?}");
}

#[tokio::test]
async fn hundreds_of_reads_and_writes_in_flight() {
    if !have_nbdkit() {
        return;
    }
    const N: usize = 256;
    const BS: usize = 4096;
    let (_server, h) = connected(&["memory", "16M"]).await;
    let h = &h;
    let bufs: Vec<AioBuffer> =
        (0..N).map(|i| AioBuffer::from(pattern((i * BS) as u64, BS))).collect();
    let mut in_flight = 0;
    let writes = bufs.iter().enumerate().map(|(i, b)| h.pwrite(b, (i * BS) as u64, None));
    let done =
        join_all(writes.collect(), || in_flight = h.handle().aio_in_flight().unwrap()).await;
    assert_eq!(in_flight, N as u32, "every write was in flight at once");
    assert!(done.iter().all(Result::is_ok), "{done:?}");

    // Reads of the first half into buffers, reads of the second half as vectors, and writes
    // over the first half of a second 1 MiB region, all in flight together.
    type Job<'a> = Pin<Box<dyn Future<Output = nbd::Result<Option<Vec<u8>>>> + 'a>>;
    let into: Vec<AioBuffer> = (0..N / 2).map(|_| AioBuffer::new(BS)).collect();
    let mut jobs: Vec<Job> = Vec::new();
    for (i, b) in into.iter().enumerate() {
        jobs.push(Box::pin(async move { h.pread(b, (i * BS) as u64, None).await.map(|_| None) }));
    }
    for i in N / 2..N {
        jobs.push(Box::pin(async move { h.pread_vec(BS, (i * BS) as u64, None).await.map(Some) }));
    }
    for (i, b) in bufs[..N / 2].iter().enumerate() {
        let at = (N * BS + i * BS) as u64;
        jobs.push(Box::pin(async move { h.pwrite(b, at, CmdFlags::FUA).await.map(|_| None) }));
    }
    let results = join_all(jobs, || in_flight = h.handle().aio_in_flight().unwrap()).await;
    assert_eq!(in_flight, (N + N / 2) as u32);
    for (i, r) in results.into_iter().enumerate() {
        match r.unwrap() {
            Some(v) => assert_eq!(v, pattern((i * BS) as u64, BS), "block {i}"),
            None if i < N / 2 => {
                assert_eq!(into[i].to_vec().unwrap(), pattern((i * BS) as u64, BS), "block {i}")
            }
            None => {}
        }
    }
    let copy = h.pread_vec(N / 2 * BS, (N * BS) as u64, None).await.unwrap();
    assert_eq!(copy, pattern(0, N / 2 * BS));
    h.disconnect(None).await.unwrap();
    assert!(h.handle().aio_is_closed());
}

/// Reads and writes in flight over TLS, where the library reads records through GnuTLS: every
/// reply must still come without an edge of readiness being lost.
#[tokio::test]
async fn many_in_flight_over_tls() {
    if !have_nbdkit() {
        return;
    }
    let dir = common::TempDir::new();
    let psk = dir.path().join("keys.psk");
    match Command::new("psktool").arg("-u").arg("alice").arg("-p").arg(&psk).output() {
        Ok(out) if out.status.success() => {}
        _ => {
            eprintln!("SKIP: psktool (gnutls-bin) cannot make a key");
            return;
        }
    }
    let server =
        Nbdkit::unix(&["--tls=require", &format!("--tls-psk={}", psk.display()), "memory", "8M"]);
    let h = AsyncHandle::new().unwrap();
    h.handle().set_tls(nbd::Tls::Require).unwrap();
    h.handle().set_tls_psk_file(&psk).unwrap();
    h.handle().set_tls_username("alice").unwrap();
    h.connect_unix(server.socket.as_ref().unwrap()).await.unwrap();
    assert!(h.handle().get_tls_negotiated().unwrap());
    const N: usize = 64;
    const BS: usize = 65536;
    let bufs: Vec<AioBuffer> =
        (0..N).map(|i| AioBuffer::from(pattern((i * BS) as u64, BS))).collect();
    let writes = bufs.iter().enumerate().map(|(i, b)| h.pwrite(b, (i * BS) as u64, None));
    let done = join_all(writes.collect(), || {}).await;
    assert!(done.iter().all(Result::is_ok), "{done:?}");
    let reads = (0..N).map(|i| h.pread_vec(BS, (i * BS) as u64, None)).collect();
    for (i, r) in join_all(reads, || {}).await.into_iter().enumerate() {
        assert_eq!(r.unwrap(), pattern((i * BS) as u64, BS), "block {i}");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn tasks_share_one_handle_across_threads() {
    if !have_nbdkit() {
        return;
    }
    let (_server, h) = connected(&["memory", "4M"]).await;
    let h = Arc::new(h);
    let mut tasks = tokio::task::JoinSet::new();
    for i in 0..64u64 {
        let h = Arc::clone(&h);
        tasks.spawn(async move {
            let data = pattern(i * 65536, 65536);
            h.pwrite(&AioBuffer::from(data.clone()), i * 65536, None).await?;
            let back = h.pread_vec(65536, i * 65536, None).await?;
            h.flush(None).await?;
            Ok::<bool, Error>(back == data)
        });
    }
    while let Some(r) = tasks.join_next().await {
        assert!(r.unwrap().unwrap(), "a task read back other data than it wrote");
    }
    assert_eq!(h.handle().aio_in_flight().unwrap(), 0);
}

#[tokio::test]
async fn a_dropped_read_keeps_its_buffer_until_it_retires() {
    if !have_nbdkit() {
        return;
    }
    let (_server, h) = connected(&["--filter=delay", "memory", "1M", "rdelay=300ms"]).await;
    let data = pattern(0, 4096);
    h.pwrite(&AioBuffer::from(data.clone()), 0, None).await.unwrap();

    // Dropped by a timeout while the server sits on the read.
    let buf = AioBuffer::from(vec![0xee; 4096]);
    let r = tokio::time::timeout(Duration::from_millis(20), h.pread(&buf, 0, None)).await;
    assert!(r.is_err(), "the read should still be in flight");
    assert_eq!(h.handle().aio_in_flight().unwrap(), 1);
    assert!(buf.is_busy() && buf.try_read().is_none() && buf.try_write().is_none());

    // Dropped by select!, and the buffer dropped too: only the command's lease keeps the
    // memory it writes into.  The same for a read into a vector.
    let lone = AioBuffer::new(4096);
    tokio::select! {
        biased;
        r = h.pread(&lone, 4096, None) => panic!("the read finished first: {r:?}"),
        _ = std::future::ready(()) => {}
    }
    drop(lone);
    let mut vec_read = Box::pin(h.pread_vec(65536, 65536, None));
    assert!(poll_once(&mut vec_read).await.is_none());
    drop(vec_read);
    assert_eq!(h.handle().aio_in_flight().unwrap(), 3);

    // The handle goes on meanwhile.
    h.pwrite(&AioBuffer::from(pattern(8192, 4096)), 8192, None).await.unwrap();
    assert_eq!(h.pread_vec(4096, 8192, None).await.unwrap(), pattern(8192, 4096));

    // Once the abandoned commands have retired, the buffer holds what its read brought, and
    // nothing writes it again: not a read of the same block after it was overwritten.
    h.drain().await;
    assert_eq!(h.handle().aio_in_flight().unwrap(), 0);
    assert!(!buf.is_busy());
    assert_eq!(buf.to_vec().unwrap(), data);
    h.pwrite(&AioBuffer::from(vec![1u8; 4096]), 0, None).await.unwrap();
    assert_eq!(h.pread_vec(4096, 0, None).await.unwrap(), vec![1u8; 4096]);
    h.drain().await;
    assert_eq!(buf.to_vec().unwrap(), data);
}

#[tokio::test]
async fn a_killed_server_fails_every_pending_future() {
    if !have_nbdkit() {
        return;
    }
    // The server holds every request for 10 s: all are pending when it dies.
    let dir = common::TempDir::new();
    let pidfile = dir.path().join("pid");
    let pidarg = pidfile.display().to_string();
    let (_server, h) =
        connected(&["-P", &pidarg, "--filter=delay", "memory", "1M", "rdelay=10", "wdelay=10"])
            .await;
    let h = &h;
    let data = AioBuffer::from(pattern(0, 512));
    type Job<'a> = Pin<Box<dyn Future<Output = nbd::Result<()>> + 'a>>;
    let mut jobs: Vec<Job> = Vec::new();
    for i in 0..16u64 {
        jobs.push(Box::pin(async move { h.pread_vec(512, i * 512, None).await.map(drop) }));
        let data = &data;
        jobs.push(Box::pin(async move { h.pwrite(data, 8192 + i * 512, None).await }));
    }
    jobs.push(Box::pin(h.zero(512, 65536, None)));
    // Held back until the commands before it are over, which they never are.
    jobs.push(Box::pin(h.disconnect(None)));
    let mut in_flight = 0;
    let all = join_all(jobs, || {
        in_flight = h.handle().aio_in_flight().unwrap();
        sigkill(&pidfile);
    });
    let results = tokio::time::timeout(PATIENCE, all).await.expect("a future never resolved");
    assert_eq!(in_flight, 34, "33 commands and the disconnect");
    assert_eq!(results.len(), 34);
    for r in &results {
        assert_lost(r.as_ref().unwrap_err());
    }
    assert!(h.handle().aio_is_dead());
    // Every later call fails at once, as fatal.
    let e = h.pread_vec(512, 0, None).await.unwrap_err();
    assert_eq!(e.errno(), EINVAL);
    assert!(e.is_fatal());
    let e = h.disconnect(None).await.unwrap_err();
    assert!(e.is_fatal());
    h.drain().await;
}

#[tokio::test]
async fn a_server_gone_mid_connect_fails_the_connect() {
    // The "server" exits at once: the handshake finds the connection closed.
    let h = AsyncHandle::new().unwrap();
    let e =
        tokio::time::timeout(PATIENCE, h.connect_command(&["true"])).await.unwrap().unwrap_err();
    assert_lost(&e);
    assert!(h.handle().aio_is_dead());
}

#[tokio::test]
async fn connect_errors() {
    let dir = common::TempDir::new();
    let h = AsyncHandle::new().unwrap();
    let e = h.connect_unix(dir.path().join("nothing")).await.unwrap_err();
    assert_eq!(e.errno(), ENOENT, "{e:?}");
    assert!(e.is_fatal());

    // Refused by a port nothing listens on, which the driver learns from the socket.
    let port = std::net::TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port();
    let h = AsyncHandle::new().unwrap();
    let e = h.connect_tcp("127.0.0.1", &port.to_string()).await.unwrap_err();
    assert_eq!(e.errno(), ECONNREFUSED, "{e:?}");
    assert!(e.is_fatal() && h.handle().aio_is_dead());

    // A bad URI fails before anything starts, and the handle stays usable.
    let h = AsyncHandle::new().unwrap();
    let e = h.connect_uri("http://example.com/").await.unwrap_err();
    assert_eq!(e.errno(), EINVAL, "{e:?}");
    assert!(!e.is_fatal() && h.handle().aio_is_created());

    if !have_nbdkit() {
        return;
    }
    // Connecting a connected handle is a state error; the connection is unharmed.
    let (server, h) = connected(&["memory", "1M"]).await;
    let e = h.connect_uri(&server.uri).await.unwrap_err();
    assert_eq!(e.errno(), EINVAL, "{e:?}");
    assert!(!e.is_fatal());
    assert_eq!(h.pread_vec(512, 0, None).await.unwrap(), vec![0; 512]);
}

/// Without an I/O driver in the runtime the task cannot wait for the socket: the connection is
/// ended rather than left waiting, and the connect fails with the reason.
#[test]
fn a_runtime_without_io_fails_the_connect() {
    if !have_nbdkit() {
        return;
    }
    let server = Nbdkit::unix(&["memory", "1M"]);
    let rt = tokio::runtime::Builder::new_current_thread().enable_time().build().unwrap();
    rt.block_on(async {
        let h = AsyncHandle::new().unwrap();
        let e = tokio::time::timeout(PATIENCE, h.connect_uri(&server.uri))
            .await
            .expect("the connect never resolved")
            .unwrap_err();
        assert!(e.is_fatal(), "{e:?}");
        assert!(e.message().contains("the tokio runtime has no I/O driver"), "{e:?}");
        assert!(h.handle().aio_is_dead());
        let e = h.pread_vec(512, 0, None).await.unwrap_err();
        assert!(e.is_fatal(), "{e:?}");
    });
}

/// A handle set up and connected with synchronous calls goes on asynchronously.
#[tokio::test]
async fn a_handle_connected_synchronously() {
    if !have_nbdkit() {
        return;
    }
    let server = Nbdkit::unix(&["memory", "1M"]);
    let sync = nbd::Handle::new().unwrap();
    sync.connect_uri(&server.uri).unwrap();
    sync.pwrite(&pattern(0, 4096), 0, None).unwrap();
    let h = AsyncHandle::from_handle(sync).unwrap();
    assert_eq!(h.pread_vec(4096, 0, None).await.unwrap(), pattern(0, 4096));
    h.drain().await;
    h.disconnect(None).await.unwrap();
    assert!(h.handle().aio_is_closed());
    // A created handle has nothing in flight.
    AsyncHandle::new().unwrap().drain().await;
}

#[test]
fn a_handle_needs_a_runtime() {
    let e = AsyncHandle::new().unwrap_err();
    assert_eq!(e.errno(), EINVAL);
    assert!(e.message().contains("no tokio runtime"), "{e:?}");
}

#[tokio::test]
async fn option_mode() {
    if !have_nbdkit() {
        return;
    }
    let server = Nbdkit::unix(&[
        "-e",
        "foo",
        "--filter=exportname",
        "memory",
        "1M",
        "exportname=foo",
        "exportname=bar",
        "exportname-list=explicit",
        "exportname-strict=true",
    ]);
    let h = AsyncHandle::new().unwrap();
    h.handle().set_opt_mode(true).unwrap();
    h.connect_uri(&server.uri).await.unwrap();
    assert!(h.handle().aio_is_negotiating());

    let names = Arc::new(Mutex::new(Vec::new()));
    let seen = Arc::clone(&names);
    h.opt_list(move |name, _| {
        seen.lock().unwrap().push(name.to_owned());
        0
    })
    .await
    .unwrap();
    assert_eq!(*names.lock().unwrap(), ["foo", "bar"]);

    h.handle().add_meta_context(nbd::CONTEXT_BASE_ALLOCATION).unwrap();
    let contexts = Arc::new(Mutex::new(Vec::new()));
    let seen = Arc::clone(&contexts);
    h.opt_list_meta_context(move |name| {
        seen.lock().unwrap().push(name.to_owned());
        0
    })
    .await
    .unwrap();
    assert_eq!(*contexts.lock().unwrap(), [nbd::CONTEXT_BASE_ALLOCATION]);

    // An export the server does not have: the request fails, the handle negotiates on.
    h.handle().set_export_name("nope").unwrap();
    let e = h.opt_info().await.unwrap_err();
    assert_eq!(e.errno(), ENOENT, "{e:?}");
    assert!(!e.is_fatal() && h.handle().aio_is_negotiating());

    h.handle().set_export_name("bar").unwrap();
    h.opt_info().await.unwrap();
    assert_eq!(h.handle().get_size().unwrap(), MIB as u64);
    h.opt_go().await.unwrap();
    assert!(h.handle().aio_is_ready());
    h.pwrite(&AioBuffer::from(pattern(0, 512)), 0, None).await.unwrap();
    assert_eq!(h.pread_vec(512, 0, None).await.unwrap(), pattern(0, 512));

    // opt_abort ends the negotiation of another handle.
    let h2 = AsyncHandle::new().unwrap();
    h2.handle().set_opt_mode(true).unwrap();
    h2.connect_uri(&server.uri).await.unwrap();
    h2.opt_abort().await.unwrap();
    assert!(h2.handle().aio_is_closed());
    let e = h2.opt_go().await.unwrap_err();
    assert_eq!(e.errno(), EINVAL);
}

#[tokio::test]
async fn block_status_zero_trim_and_errors() {
    if !have_nbdkit() {
        return;
    }
    let (_server, h) = connected_for_status(&["memory", "128M"]).await;
    h.pwrite(&AioBuffer::from(pattern(0, 65536)), 0, None).await.unwrap();
    let extents = Arc::new(Mutex::new(Vec::new()));
    let seen = Arc::clone(&extents);
    h.block_status_64(
        4 * MIB,
        0,
        move |context, offset, e: &[NbdExtent], _| {
            assert_eq!(context, nbd::CONTEXT_BASE_ALLOCATION);
            seen.lock().unwrap().push((offset, e.to_vec()));
            0
        },
        None,
    )
    .await
    .unwrap();
    let first = {
        let extents = extents.lock().unwrap();
        assert_eq!(extents.len(), 1, "one call for the one context");
        extents[0].1[0]
    };
    assert_eq!(first, NbdExtent { length: 65536, flags: 0 });

    h.zero(4096, 0, None).await.unwrap();
    h.trim(4096, 8192, None).await.unwrap();
    h.flush(None).await.unwrap();
    let back = h.pread_vec(12288, 0, None).await.unwrap();
    assert_eq!(back[..4096], [0; 4096]);
    assert_eq!(back[4096..8192], pattern(4096, 4096)[..]);
    assert_eq!(back[8192..], [0; 4096]);

    // Argument errors come at once, from the call itself.
    let e = h.pread_vec(65 * MIB as usize, 0, None).await.unwrap_err();
    assert_eq!(e.errno(), 34); // ERANGE
    assert!(!e.is_fatal());
}

#[tokio::test]
async fn a_command_the_server_fails() {
    if !have_nbdkit() {
        return;
    }
    let (_server, h) =
        connected(&["--filter=error", "memory", "1M", "error-pread=EIO", "error-pread-rate=1"])
            .await;
    let e = h.pread_vec(512, 0, None).await.unwrap_err();
    assert_eq!(e.errno(), EIO, "{e:?}");
    assert!(!e.is_fatal());
    assert!(e.message().starts_with("nbd_aio_pread: "), "{e:?}");
    h.pwrite(&AioBuffer::from(vec![3u8; 512]), 0, None).await.unwrap();
}

#[tokio::test]
async fn a_panicking_callback_fails_its_command_only() {
    if !have_nbdkit() {
        return;
    }
    let (_server, h) = connected_for_status(&["memory", "1M"]).await;
    let e = h
        .block_status_64(MIB, 0, |_, _, _, _| panic!("deliberate panic in a callback"), None)
        .await
        .unwrap_err();
    assert_eq!(e.errno(), ECANCELED, "{e:?}");
    assert!(!e.is_fatal());
    assert_eq!(h.pread_vec(512, 0, None).await.unwrap(), vec![0; 512]);
}

#[tokio::test]
async fn dropping_the_handle_with_commands_in_flight() {
    if !have_nbdkit() {
        return;
    }
    let (_server, h) =
        connected_for_status(&["--filter=delay", "memory", "1M", "rdelay=10", "delay-extents=10"])
            .await;
    let freed = DropCounter::new();
    let token = freed.token();
    let mut status = Box::pin(h.block_status_64(
        MIB,
        0,
        move |_, _, _, _| {
            let _ = &token;
            0
        },
        None,
    ));
    assert!(poll_once(&mut status).await.is_none());
    drop(status);
    let buf = AioBuffer::new(4096);
    let mut read = Box::pin(h.pread(&buf, 0, None));
    assert!(poll_once(&mut read).await.is_none());
    drop(read);
    assert_eq!(h.handle().aio_in_flight().unwrap(), 2);
    assert!(buf.is_busy());
    assert_eq!(freed.dropped(), 0);
    // Closed at once: the callback of the command in flight is freed, the lease released.
    drop(h);
    assert_eq!(freed.dropped(), 1);
    assert!(!buf.is_busy());
}

#[tokio::test]
async fn many_in_flight_across_server_restarts() {
    if !have_nbdkit() {
        return;
    }
    const N: usize = 64;
    const BS: usize = 4096;
    const ROUNDS: usize = 2;
    // Every request is held 50 ms, so that all of them are in flight when the server dies.
    let mut server = Restartable::file(MIB, &["--filter=delay"], &["rdelay=50ms", "wdelay=50ms"]);
    let h = AsyncHandle::new().unwrap();
    h.handle().set_reconnect_delay(10_000).unwrap();
    h.connect_uri(&server.uri).await.unwrap();
    let h = &h;
    h.pwrite(&AioBuffer::from(pattern(0, N * BS)), 0, None).await.unwrap();

    // Each round: reads of the region written last and writes of the next one, in flight
    // together; the server is killed and started again on the same socket once all are
    // issued.  The descriptor the driver watches changes underneath it: a timer perhaps, then
    // a new socket, which the second time takes the number of the one it replaces (the timer
    // keeps its own).
    for round in 0..ROUNDS {
        let (from, to) = (round * N * BS, (round + 1) * N * BS);
        let bufs: Vec<AioBuffer> =
            (0..N).map(|i| AioBuffer::from(pattern((to + i * BS) as u64, BS))).collect();
        type Job<'a> = Pin<Box<dyn Future<Output = nbd::Result<Option<Vec<u8>>>> + 'a>>;
        let mut jobs: Vec<Job> = Vec::new();
        for (i, b) in bufs.iter().enumerate() {
            let at = (from + i * BS) as u64;
            jobs.push(Box::pin(async move { h.pread_vec(BS, at, None).await.map(Some) }));
            let at = (to + i * BS) as u64;
            jobs.push(Box::pin(async move { h.pwrite(b, at, None).await.map(|_| None) }));
        }
        let mut in_flight = 0;
        let all = join_all(jobs, || {
            in_flight = h.handle().aio_in_flight().unwrap();
            server.restart();
        });
        let results = tokio::time::timeout(PATIENCE, all).await.expect("a future never resolved");
        assert_eq!(in_flight, 2 * N as u32);
        for (j, r) in results.into_iter().enumerate() {
            if let Some(v) = r.unwrap_or_else(|e| panic!("round {round}, command {j}: {e:?}")) {
                assert_eq!(v, pattern((from + j / 2 * BS) as u64, BS), "read {}", j / 2);
            }
        }
        assert_eq!(h.handle().stats_reconnections(), round as u64 + 1);
        assert!(driver_watches_the_socket(h), "round {round}: the driver watches a stale socket");
    }
    let all = (ROUNDS + 1) * N * BS;
    assert_eq!(h.pread_vec(all, 0, None).await.unwrap(), pattern(0, all));
    h.disconnect(None).await.unwrap();
}

/// Whether the driver watches the handle's socket now: some descriptor of this process other
/// than the handle's own is the same socket (the driver's duplicate).  A driver that kept the
/// duplicate of a lost socket whose number the new one took would wait on a dead socket (which
/// is ready at every poll, so that the driver would spin rather than hang).
fn driver_watches_the_socket(h: &AsyncHandle) -> bool {
    let fd = h.handle().aio_get_fd().unwrap().to_string();
    let socket = std::fs::read_link(format!("/proc/self/fd/{fd}")).unwrap();
    std::fs::read_dir("/proc/self/fd")
        .unwrap()
        .filter_map(|e| e.ok())
        .filter(|e| e.file_name().to_str() != Some(fd.as_str()))
        .any(|e| std::fs::read_link(e.path()).is_ok_and(|t| t == socket))
}
