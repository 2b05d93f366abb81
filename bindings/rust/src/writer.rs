// writer.rs: WriterChannel, a concurrent writer served from a thread of the application without
// unsafe code: the handle's outgoing bytes are queued for the thread, which writes them to its
// own duplicate of the socket, blocking until all of it is out.
use std::ffi::{c_int, c_ulong, c_void};
use std::fmt;
use std::io;
use std::os::fd::{AsRawFd, BorrowedFd, OwnedFd, RawFd};
use std::sync::{mpsc, Arc, Condvar, Mutex, MutexGuard, OnceLock, PoisonError};
use std::thread::JoinHandle;

use crate::callback::set_errno;
use crate::error::{Error, Result};
use crate::{sys, Handle};

// Linux values.
const EIO: i32 = 5;
const ENOMEM: i32 = 12;
const ESHUTDOWN: i32 = 108;
const MSG_NOSIGNAL: c_int = 0x4000;
const POLLOUT: i16 = 0x4;
const SHUT_RDWR: c_int = 2;

#[repr(C)]
struct PollFd {
    fd: c_int,
    events: i16,
    revents: i16,
}

extern "C" {
    fn send(fd: c_int, buf: *const c_void, len: usize, flags: c_int) -> isize;
    fn poll(fds: *mut PollFd, nfds: c_ulong, timeout: c_int) -> c_int;
    fn shutdown(fd: c_int, how: c_int) -> c_int;
}

/// The receiving end of a concurrent writer, for a thread of the application: made by
/// [`Handle::writer_channel`], it hands the thread what the handle sends ([`recv`]), writes it
/// to the server ([`send`]) and reports a failure to the handle ([`fail`]); [`run`] does all
/// three until the handle is closed.
///
/// The channel holds no [`Handle`]: it is tied to the handle only through the writer callback,
/// which the handle frees when it is closed.  From then on [`recv`] returns `None`, [`fail`] does
/// nothing, and the socket is shut down, so a thread blocked in [`send`] returns too.  A thread
/// serving the channel therefore ends when the handle is dropped, and joining it after dropping
/// the handle cannot deadlock.  (A thread that holds an `Arc<Handle>` keeps the handle open
/// instead: the handle is never closed, its writer never ends, and joining the thread before
/// the last `Arc` is dropped waits forever.)
///
/// Dropping the channel while the handle is open ends the connection with `ESHUTDOWN`: nothing
/// could send the handle's requests any more.
///
/// [`recv`]: WriterChannel::recv
/// [`send`]: WriterChannel::send
/// [`fail`]: WriterChannel::fail
/// [`run`]: WriterChannel::run
#[must_use = "dropping the channel ends the handle's connection"]
pub struct WriterChannel {
    shared: Arc<Shared>,
}

// What the writer callback, the channel and the callback's free hook share.
struct Shared {
    state: Mutex<State>,
    ready: Condvar,
    // A duplicate of the handle's socket: its number cannot be reused under the thread, which
    // may still be writing after the handle has closed its own.  Set once the writer is in.
    sock: OnceLock<OwnedFd>,
}

struct State {
    // Bytes the handle has handed over and the thread has not taken yet, in order.
    pending: Vec<u8>,
    // The handle, until its free hook runs at nbd_close; fail() uses it under this lock.
    handle: Option<RawHandle>,
    // Whether the WriterChannel still exists to take the bytes.
    receiver: bool,
}

struct RawHandle(*mut sys::nbd_handle);

// SAFETY: only nbd_concurrent_writer_error is called through it, which takes no lock and is safe
// from any thread; the pointer is dropped (under the state lock) before the handle is freed.
unsafe impl Send for RawHandle {}

impl RawHandle {
    fn writer_error(&self, errno: i32) {
        // SAFETY: the handle is open: its free hook has not cleared the pointer yet, and it
        // waits for the state lock, which the caller holds.
        unsafe { sys::nbd_concurrent_writer_error(self.0, errno) };
    }
}

impl Shared {
    fn lock(&self) -> MutexGuard<'_, State> {
        self.state.lock().unwrap_or_else(PoisonError::into_inner)
    }
}

// The writer callback's state: its drop is the callback's free hook, which the handle runs when
// it is closed (or when installing the writer failed).
struct Feed(Arc<Shared>);

impl Feed {
    // Runs with the handle locked; never blocks beyond the state lock, which nothing holds for
    // long (fail() holds it around a call that takes no lock).
    fn push(&self, buf: &[u8]) -> i32 {
        let mut st = self.0.lock();
        if !st.receiver {
            set_errno(ESHUTDOWN);
            return -1;
        }
        if st.pending.try_reserve(buf.len()).is_err() {
            set_errno(ENOMEM);
            return -1;
        }
        st.pending.extend_from_slice(buf);
        drop(st);
        self.0.ready.notify_one();
        0
    }
}

impl Drop for Feed {
    fn drop(&mut self) {
        let mut st = self.0.lock();
        st.handle = None;
        st.pending = Vec::new(); // the connection is gone: nothing left to send
        drop(st);
        self.0.ready.notify_all();
        // The handle closes its socket, but the duplicate would keep the connection open, and a
        // server that stopped reading could then hold the thread in send() for ever.
        if let Some(sock) = self.0.sock.get() {
            // SAFETY: shutdown has no memory-safety preconditions; sock is open.
            unsafe { shutdown(sock.as_raw_fd(), SHUT_RDWR) };
        }
    }
}

impl Handle {
    /// Installs a concurrent writer ([`Handle::set_concurrent_writer`]) served by the returned
    /// [`WriterChannel`], which an application thread then drives: typically
    /// `std::thread::spawn(move || channel.run())`, or [`Handle::spawn_writer_thread`] for both
    /// steps at once.
    ///
    /// The handle must have its socket and accept a writer: connected, or connecting once
    /// [`Handle::aio_get_fd`] succeeds (an `aio_connect_*` call has made the socket; the rest
    /// of the handshake then goes through the channel).  The call fails with `EINVAL` on a
    /// newly created handle (no socket yet), while negotiating in option mode, once closed or
    /// dead, and when the handle already has a writer; nothing is installed then.
    ///
    /// ```no_run
    /// # fn main() -> Result<(), Box<dyn std::error::Error>> {
    /// let h = nbd::Handle::new()?;
    /// h.connect_uri("nbd+unix:///?socket=/tmp/nbd.sock")?;
    /// let channel = h.writer_channel()?;
    /// let writer = std::thread::spawn(move || channel.run());
    /// h.pwrite(&[1u8; 4096], 0, None)?; // sent by the thread
    /// drop(h); // closes the handle: the thread's run() returns
    /// writer.join().unwrap()?;
    /// # Ok(())
    /// # }
    /// ```
    pub fn writer_channel(&self) -> Result<WriterChannel> {
        // Checked first so that a handle without a socket is refused with nothing installed.
        self.aio_get_fd()?;
        let shared = Arc::new(Shared {
            state: Mutex::new(State {
                pending: Vec::new(),
                handle: Some(RawHandle(self.h)),
                receiver: true,
            }),
            ready: Condvar::new(),
            sock: OnceLock::new(),
        });
        let feed = Feed(Arc::clone(&shared));
        self.set_concurrent_writer(move |buf: &[u8]| feed.push(buf))?;
        let channel = WriterChannel { shared };
        // With a writer installed, the handle keeps its socket open until it is closed (a lost
        // connection parks it), and it cannot be closed while &self is borrowed: the descriptor
        // is safe to duplicate now, not before.  Failing here, the connection was lost in
        // between, and dropping the channel changes nothing.
        let fd = self.aio_get_fd()?;
        // SAFETY: fd is the handle's open socket, which stays open during this borrow (above).
        let sock = unsafe { BorrowedFd::borrow_raw(fd) };
        let dup = sock.try_clone_to_owned().map_err(|e| io_error("duplicate the socket", &e))?;
        let _ = channel.shared.sock.set(dup);
        Ok(channel)
    }

    /// [`Handle::writer_channel`] served by a new thread running [`WriterChannel::run`]: the
    /// concurrent writer in one call, as [`Handle::start_concurrent_writer`] is, but with the
    /// thread in the application's hands.  The thread holds no handle; it ends when the handle
    /// is dropped (its result is then `Ok`) or after a failed send, which it has reported to the
    /// handle (the `io::Error`).  Join it after dropping the handle, never before.
    ///
    /// Fails as [`Handle::writer_channel`] does, with nothing installed and no thread left
    /// running, or with the errno of `std::thread::Builder::spawn` if no thread can be started.
    pub fn spawn_writer_thread(&self) -> Result<JoinHandle<io::Result<()>>> {
        // The thread is started first, so that failing to start it leaves the handle alone.
        let (tx, rx) = mpsc::channel::<WriterChannel>();
        let thread = std::thread::Builder::new()
            .name("nbd-writer".into())
            .spawn(move || match rx.recv() {
                Ok(channel) => channel.run(),
                Err(_) => Ok(()), // no channel: writer_channel failed
            })
            .map_err(|e| io_error("start the writer thread", &e))?;
        match self.writer_channel() {
            Ok(channel) => {
                // The thread is waiting for it; if it had died, dropping the channel in the
                // returned error reports ESHUTDOWN to the handle.
                let _ = tx.send(channel);
                Ok(thread)
            }
            Err(e) => {
                drop(tx);
                let _ = thread.join();
                Err(e)
            }
        }
    }
}

impl WriterChannel {
    /// Waits for bytes to send and returns all that the handle has queued since the last call,
    /// in order (one or more of the handle's buffers, joined).  Returns `None` once the handle
    /// has been closed; what was still queued then is dropped, as the connection is gone.
    pub fn recv(&mut self) -> Option<Vec<u8>> {
        let mut st = self.shared.lock();
        loop {
            if st.handle.is_none() {
                return None;
            }
            if !st.pending.is_empty() {
                return Some(std::mem::take(&mut st.pending));
            }
            st = self.shared.ready.wait(st).unwrap_or_else(PoisonError::into_inner);
        }
    }

    /// Writes all of `buf` to the handle's socket, blocking until it is out (the library makes
    /// the socket blocking for a writer; should it ever be non-blocking, `EAGAIN` is waited
    /// out with `poll(2)`).  Fails
    /// with the errno of the failed `send(2)`; once the handle is closed, with `EPIPE`, as the
    /// socket is then shut down.  Report a failure to the handle with [`WriterChannel::fail`].
    pub fn send(&mut self, buf: &[u8]) -> io::Result<()> {
        let fd = self.sock();
        let mut rest = buf;
        while !rest.is_empty() {
            // SAFETY: rest is readable for its length; fd is our open socket.
            let r = unsafe { send(fd, rest.as_ptr().cast(), rest.len(), MSG_NOSIGNAL) };
            if r >= 0 {
                rest = &rest[r as usize..];
                continue;
            }
            let e = io::Error::last_os_error();
            match e.kind() {
                io::ErrorKind::Interrupted => {}
                io::ErrorKind::WouldBlock => wait_writable(fd)?,
                _ => return Err(e),
            }
        }
        Ok(())
    }

    /// Reports that sending failed with `errno` ([`Handle::concurrent_writer_error`]): the
    /// handle's connection ends at its next step, and every command in flight completes with
    /// `errno`.  Only the first error counts.  Once the handle is closed this does nothing (it
    /// never touches a freed handle).  An errno of 0 fails with `EINVAL`.
    pub fn fail(&self, errno: i32) -> Result<()> {
        if errno == 0 {
            return Err(Error::invalid_argument("nbd_concurrent_writer_error", "err", "is 0"));
        }
        if let Some(h) = &self.shared.lock().handle {
            h.writer_error(errno);
        }
        Ok(())
    }

    /// Whether the handle has been closed: [`WriterChannel::recv`] returns `None` from now on.
    pub fn is_closed(&self) -> bool {
        self.shared.lock().handle.is_none()
    }

    /// Serves the writer until the handle is closed: takes what the handle queues, sends it, and
    /// on a failed send reports the errno with [`WriterChannel::fail`] and returns the error.
    /// A send cut short by the handle being closed is not a failure: the result is then `Ok`.
    pub fn run(mut self) -> io::Result<()> {
        while let Some(buf) = self.recv() {
            if let Err(e) = self.send(&buf) {
                if self.is_closed() {
                    break;
                }
                let _ = self.fail(errno_of(&e));
                return Err(e);
            }
        }
        Ok(())
    }

    fn sock(&self) -> RawFd {
        // Set by writer_channel before the channel is handed out.
        self.shared.sock.get().map_or(-1, AsRawFd::as_raw_fd)
    }
}

impl Drop for WriterChannel {
    fn drop(&mut self) {
        let mut st = self.shared.lock();
        st.receiver = false;
        st.pending = Vec::new();
        if let Some(h) = &st.handle {
            // Requests queued from now on could never reach the server: end the connection
            // rather than let commands wait for ever.
            h.writer_error(ESHUTDOWN);
        }
    }
}

impl fmt::Debug for WriterChannel {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let st = self.shared.lock();
        f.debug_struct("WriterChannel")
            .field("sock", &self.sock())
            .field("pending", &st.pending.len())
            .field("closed", &st.handle.is_none())
            .finish()
    }
}

// Waits until fd can take more data (or has failed: the next send says how).
fn wait_writable(fd: RawFd) -> io::Result<()> {
    let mut p = PollFd { fd, events: POLLOUT, revents: 0 };
    // SAFETY: p is one valid pollfd.
    if unsafe { poll(&mut p, 1, -1) } == -1 {
        let e = io::Error::last_os_error();
        if e.kind() != io::ErrorKind::Interrupted {
            return Err(e);
        }
    }
    Ok(())
}

fn io_error(what: &str, e: &io::Error) -> Error {
    Error::new(errno_of(e), format!("nbd: cannot {what}: {e}"))
}

// The errno of an I/O error; EIO for one without.
fn errno_of(e: &io::Error) -> i32 {
    e.raw_os_error().filter(|&n| n != 0).unwrap_or(EIO)
}
