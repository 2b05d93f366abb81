//! The async API of nbdpp's Rust binding, on tokio: [`AsyncHandle`] wraps an [`nbd::Handle`] and
//! gives every asynchronous call of the C API an `async fn`, named without its `aio_` prefix
//! (`nbd_aio_pread` is [`AsyncHandle::pread`], `nbd_aio_connect_uri` is
//! [`AsyncHandle::connect_uri`], `nbd_aio_opt_go` is [`AsyncHandle::opt_go`]).  The other calls
//! (settings, `get_size`, `can_*`, ...) are those of the synchronous handle, [`AsyncHandle::handle`].
//!
//! ```no_run
//! # async fn f() -> nbd::Result<()> {
//! let h = nbd_tokio::AsyncHandle::new()?;
//! h.connect_uri("nbd+unix:///?socket=/tmp/nbd.sock").await?;
//! let data = nbd::AioBuffer::from(vec![7u8; 4096]);
//! h.pwrite(&data, 0, None).await?;
//! let back = h.pread_vec(4096, 0, None).await?;
//! assert_eq!(back, vec![7u8; 4096]);
//! println!("{} bytes", h.handle().get_size()?);
//! h.disconnect(None).await?;
//! # Ok(())
//! # }
//! ```
//!
//! # How the handle is driven
//!
//! [`AsyncHandle::new`] spawns a driver task on the tokio runtime it is called in (any flavour,
//! with its I/O driver enabled).  The task waits with [`tokio::io::unix::AsyncFd`] for the
//! handle's socket to become ready in the direction `nbd_aio_get_direction` asks for, and then
//! calls `nbd_aio_notify_read` or `nbd_aio_notify_write`, which send queued requests, read
//! replies and run the completion callbacks.  A method that starts a command wakes the task, as
//! the direction may have changed.  Nothing polls in a loop: between events the task sleeps.
//! The task watches a duplicate of the descriptor, so that the socket the library closes or
//! replaces (while connecting to another address, or when the connection ends) can never take
//! another registration of the same number with it.  After every step it checks which file the
//! handle's descriptor is and registers it again if the library replaced it: a handle with a
//! reconnect delay ([`nbd::Handle::set_reconnect_delay`]) that lost its connection watches a
//! timer between attempts, then the new socket, which often has the lost one's number.  The
//! futures in flight wait through the reconnection and resolve with their commands' outcomes.
//!
//! Each command gets a completion callback that hands its error code to the command's own
//! future through a oneshot channel: a result reaches exactly one future.  Calls that have no
//! completion (the connects, [`AsyncHandle::opt_abort`], [`AsyncHandle::disconnect`]) wait for the
//! handle state that ends them.
//!
//! # Cancel safety
//!
//! Every future is cancel-safe: it can be dropped at any await point (by `select!`, a timeout,
//! an aborted task) without the library ever writing into memory the program has freed.
//!
//! - The buffers of reads and writes are [`nbd::AioBuffer`]s, which a command leases until it
//!   retires.  The lease keeps the memory alive and Rust code off it: after the future is
//!   dropped, [`nbd::AioBuffer::try_read`] returns `None` while the command may still write, and
//!   once it returns the bytes, nothing writes them again.  The buffer may be dropped as well;
//!   its memory is freed when the command retires.
//! - Dropping a future does not cancel its command, which NBD cannot do: the command stays in
//!   flight, the driver reads its reply when it comes and discards the outcome.  Callbacks the
//!   call took (an extent callback, say) may still run until then.
//!   [`AsyncHandle::drain`] waits until no command is in flight, abandoned ones included.
//! - A future does nothing until it is first polled; the call is issued by that first poll.
//!
//! Dropping a future is therefore how one command is interrupted, with `tokio::time::timeout`
//! or `select!`: it is abandoned as a synchronous command that timed out is, and the handle and
//! the other commands go on.  [`nbd::Handle::set_timeout`] and [`nbd::Handle::interrupt`] bound
//! only calls that block, which the methods of `AsyncHandle` never do.
//!
//! # Errors and the end of a connection
//!
//! Futures resolve with [`nbd::Result`].  A command the server fails gives the errno it sent
//! (`EIO`, ...); an argument or state error is reported at once, as by the synchronous call.
//! When the connection dies (the server goes away, a protocol error), every pending future
//! resolves with the error that ended it, for which [`nbd::Error::is_fatal`] is true; so does
//! every later call.  Nothing is left waiting.
//!
//! Dropping the `AsyncHandle` stops the driver and closes the handle (`nbd_close`) at once, even
//! with commands in flight (which needs every future to be gone, since they borrow the handle):
//! the connection is dropped without a disconnect request, and the callbacks and buffer leases
//! of the commands still in flight are released.  Use [`AsyncHandle::disconnect`] first for a
//! clean end of the session.
//!
//! # The synchronous handle
//!
//! [`AsyncHandle::handle`] is the [`nbd::Handle`] underneath, for every call that is not
//! asynchronous.  Calls that wait (`pread`, `connect_uri`, `opt_go`, ...) work on it too but
//! block the thread they run on, which a task on a tokio runtime should not do.  A command
//! started with the handle's own `aio_*` methods does not wake the driver; start commands with
//! the methods of `AsyncHandle`.
//!
//! A callback runs on the driver task, while the handle is locked, and must not call the
//! handle.  A panic in a callback fails its command (with `ECANCELED` unless it had an error
//! already); the driver catches it after the panic hook has reported it, and goes on.
//!
//! # Compared with libnbd's AsyncHandle
//!
//! libnbd's crate names its async methods the same way, but its reads and writes borrow a
//! `&mut [u8]` or `&[u8]` across the await: if the future is dropped while the command is in
//! flight, the library may still write into a slice whose memory is gone, so those futures are
//! not cancel-safe.  Here the command owns a lease on its buffer instead, and the futures of
//! every call, reads and writes included, may be dropped at any time.
#![warn(missing_docs)]
#![deny(unsafe_op_in_unsafe_fn)]

mod driver;
mod handle;

pub use handle::AsyncHandle;

mod api {
    include!(env!("NBD_TOKIO_GENERATED"));
}
