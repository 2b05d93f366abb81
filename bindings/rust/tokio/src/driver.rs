// driver.rs: the task that runs a handle from its socket: it waits for the direction
// nbd_aio_get_direction asks for, then calls nbd_aio_notify_read or nbd_aio_notify_write.
use std::fs::File;
use std::future::Future;
use std::io;
use std::mem::ManuallyDrop;
use std::net::Shutdown;
use std::os::fd::{BorrowedFd, FromRawFd, OwnedFd, RawFd};
use std::os::unix::fs::MetadataExt;
use std::os::unix::net::UnixStream;
use std::panic::{self, AssertUnwindSafe};
use std::pin::Pin;
use std::sync::atomic::Ordering;
use std::sync::{Arc, PoisonError, Weak};
use std::task::{Context, Poll};

use nbd::{Error, Handle, AIO_DIRECTION_READ, AIO_DIRECTION_WRITE};
use tokio::io::unix::{AsyncFd, AsyncFdReadyGuard};
use tokio::io::Interest;

use crate::handle::{Phase, Shared};

/// Events handled in one poll before the task yields to the others on its thread.
const STEPS_PER_POLL: usize = 64;

/// The driver's watch on the handle's descriptor: a duplicate of it, so that closing the
/// registration never touches a descriptor of the same number that the library may have
/// opened after closing its own; and which file it is, to notice the library replacing it
/// under the same number (connecting to the next address of a host name, or connecting again
/// after a lost connection, where the descriptor is a timer between attempts and then the new
/// socket, which often takes the old one's number).
pub(crate) struct Registration {
    afd: AsyncFd<OwnedFd>,
    fd: RawFd,
    socket: (u64, u64),
}

/// The driver task.  It holds the shared state weakly, so that dropping the AsyncHandle closes
/// the handle at once unless the task is in the middle of a step.
pub(crate) struct Driver {
    shared: Weak<Shared>,
}

impl Driver {
    pub(crate) fn new(shared: &Arc<Shared>) -> Self {
        Driver { shared: Arc::downgrade(shared) }
    }
}

impl Future for Driver {
    type Output = ();

    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<()> {
        let Some(shared) = self.shared.upgrade() else {
            return Poll::Ready(());
        };
        // Before looking at the handle: a call issued from now on wakes this poll's waker.
        shared.set_waker(cx.waker());
        for _ in 0..STEPS_PER_POLL {
            match step(&shared, cx) {
                Step::Again => {}
                Step::Wait => return Poll::Pending,
                Step::End => {
                    shared.reg.lock().unwrap_or_else(PoisonError::into_inner).take();
                    return Poll::Ready(());
                }
            }
        }
        cx.waker().wake_by_ref();
        Poll::Pending
    }
}

enum Step {
    /// Something happened: look again.
    Again,
    /// Nothing to do until a waker fires.
    Wait,
    /// The handle is closed or dead, or the AsyncHandle is gone.
    End,
}

fn step(shared: &Shared, cx: &mut Context<'_>) -> Step {
    if shared.stopped.load(Ordering::SeqCst) {
        return Step::End;
    }
    let h = &shared.handle;
    let phase = shared.phase_now();
    // Commands exist only once connected (and are all over when closed or dead).
    if phase != Phase::Connected || h.aio_in_flight().map_or(true, |n| n == 0) {
        shared.idle.notify_waiters();
    }
    shared.publish(phase);
    if matches!(phase, Phase::Closed | Phase::Dead) {
        return Step::End;
    }
    let dir = h.aio_get_direction();
    if dir == 0 {
        return Step::Wait; // created, or negotiating with no option request in flight
    }
    let mut reg = shared.reg.lock().unwrap_or_else(PoisonError::into_inner);
    let afd = match register(&mut reg, h) {
        Ok(afd) => afd,
        Err(e) => {
            drop(reg);
            return give_up(shared, e);
        }
    };
    let (read, write) = match wait_for(afd, dir, cx) {
        Ok(Some(ready)) => ready,
        Ok(None) => return Step::Wait,
        Err(e) => {
            drop(reg);
            return give_up(shared, e);
        }
    };
    // Reads first: a reply may change what there is to send.
    if read.is_some() && h.aio_get_direction() & AIO_DIRECTION_READ != 0 {
        notify(shared, Handle::aio_notify_read);
    }
    if write.is_some() && h.aio_get_direction() & AIO_DIRECTION_WRITE != 0 {
        notify(shared, Handle::aio_notify_write);
    }
    // The library handles an event until the socket would block.  So a direction it still
    // waits for has no readiness left; one it no longer waits for keeps what tokio saw, lest an
    // edge be lost (the next wait then finds it at once, and the library gets EAGAIN).
    let now = h.aio_get_direction();
    settle(read, now & AIO_DIRECTION_READ != 0);
    settle(write, now & AIO_DIRECTION_WRITE != 0);
    Step::Again
}

type Guard<'a> = AsyncFdReadyGuard<'a, OwnedFd>;

/// The readiness of the socket in the directions of dir, or None (the task's waker is then
/// registered for them).
fn wait_for<'a>(
    afd: &'a AsyncFd<OwnedFd>,
    dir: u32,
    cx: &mut Context<'_>,
) -> io::Result<Option<(Option<Guard<'a>>, Option<Guard<'a>>)>> {
    let mut read = None;
    if dir & AIO_DIRECTION_READ != 0 {
        if let Poll::Ready(guard) = afd.poll_read_ready(cx) {
            read = Some(guard?);
        }
    }
    let mut write = None;
    if dir & AIO_DIRECTION_WRITE != 0 {
        if let Poll::Ready(guard) = afd.poll_write_ready(cx) {
            write = Some(guard?);
        }
    }
    Ok((read.is_some() || write.is_some()).then_some((read, write)))
}

fn settle(guard: Option<Guard<'_>>, waited_for: bool) {
    if let Some(mut guard) = guard {
        if waited_for {
            guard.clear_ready();
        } else {
            guard.retain_ready();
        }
    }
}

/// One nbd_aio_notify_* call.  A failure that leaves the handle dead is the end of the
/// connection; any other (an event the handle stopped waiting for meanwhile) is harmless.  A
/// panic a callback raised is resumed by the call; it has failed its command already, and is
/// dropped here (the panic hook has reported it) so that the other commands go on.
fn notify(shared: &Shared, call: fn(&Handle) -> nbd::Result<()>) {
    match panic::catch_unwind(AssertUnwindSafe(|| call(&shared.handle))) {
        Ok(Err(e)) if e.is_fatal() => shared.record_death(&e),
        _ => {}
    }
}

/// The registration of the handle's current socket, made or renewed as needed.
fn register<'a>(
    reg: &'a mut Option<Registration>,
    h: &Handle,
) -> io::Result<&'a AsyncFd<OwnedFd>> {
    let fd = h.aio_get_fd().map_err(io::Error::from)?;
    // Asked after every step: a step may have replaced the descriptor (nbd_aio_get_fd(3)).
    let same = match reg {
        Some(r) if r.fd == fd => r.socket == socket_of(fd)?,
        _ => false,
    };
    if !same {
        *reg = None;
        // SAFETY: fd is the handle's open socket, and is only duplicated here.
        let dup = unsafe { BorrowedFd::borrow_raw(fd) }.try_clone_to_owned()?;
        let socket = socket_of(fd)?;
        // tokio panics (and its panic hook reports it) where the runtime has no I/O driver.
        let afd = panic::catch_unwind(|| {
            AsyncFd::with_interest(dup, Interest::READABLE | Interest::WRITABLE)
        })
        .map_err(|_| {
            io::Error::new(io::ErrorKind::Other, "the tokio runtime has no I/O driver")
        })??;
        *reg = Some(Registration { afd, fd, socket });
    }
    Ok(&reg.as_ref().expect("registered just now").afd)
}

/// Which file fd is: its device and inode numbers.
fn socket_of(fd: RawFd) -> io::Result<(u64, u64)> {
    // SAFETY: fd is open; ManuallyDrop leaves it open.
    let file = ManuallyDrop::new(unsafe { File::from_raw_fd(fd) });
    let meta = file.metadata()?;
    Ok((meta.dev(), meta.ino()))
}

/// The driver cannot wait for the socket (the runtime has no I/O driver, the registration
/// failed): the connection is ended, so that nothing waits for an event that will not come.
/// Shut down, the socket reads as closed, and the library fails every command in flight.
fn give_up(shared: &Shared, e: io::Error) -> Step {
    let h = &shared.handle;
    let error = Error::new(
        e.raw_os_error().unwrap_or(0),
        format!("nbd_tokio: cannot wait for the handle's socket: {e}"),
    );
    shared.record_death(&error);
    shared.reg.lock().unwrap_or_else(PoisonError::into_inner).take();
    if let Ok(fd) = h.aio_get_fd() {
        // SAFETY: fd is the handle's open socket; ManuallyDrop leaves it open.  shutdown(2)
        // works on any socket, whatever the type of the wrapper.
        let sock = ManuallyDrop::new(unsafe { UnixStream::from_raw_fd(fd) });
        let _ = sock.shutdown(Shutdown::Both);
    }
    // Each step either ends the connection or moves it on; a few are enough.
    for _ in 0..16 {
        let dir = h.aio_get_direction();
        if h.aio_is_dead() || h.aio_is_closed() || dir == 0 {
            break;
        }
        if dir & AIO_DIRECTION_READ != 0 {
            notify(shared, Handle::aio_notify_read);
        } else {
            notify(shared, Handle::aio_notify_write);
        }
    }
    // Then the next step ends the task; should the handle live on, wait for a call rather
    // than try again at once.
    if h.aio_is_dead() || h.aio_is_closed() {
        Step::Again
    } else {
        Step::Wait
    }
}
