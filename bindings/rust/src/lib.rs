//! Safe Rust binding of nbdpp, a Network Block Device (NBD) client library whose C ABI is a
//! drop-in replacement for libnbd 1.24 (`libnbd.so.0`).
//!
//! The binding is generated from the same `api.yaml` as the C header: every call of the C API
//! that takes a handle is a method of [`Handle`] with the same name (`nbd_pread` is
//! [`Handle::pread`]), documented with the text of its man page.  Under it, [`sys`] declares the
//! C API as it is.
//!
//! - A [`Handle`] closes itself when dropped.  It is [`Send`] and [`Sync`]: the C library takes a
//!   lock per handle, so one handle may be shared between threads (in an `Arc`).
//! - Calls that can fail return [`Result`]; an [`Error`] carries the errno and message, and
//!   tells whether the handle is dead ([`Error::is_fatal`]) or may be used again.
//! - Enums are Rust enums ([`Tls`]), flag sets are typed bit sets ([`CmdFlags`]).  An optional
//!   flags argument takes `None` or a set.
//! - Callbacks are closures (`FnMut(...) -> i32 + Send + 'static`), boxed and handed to the C
//!   library, which frees them exactly once.  An optional callback takes `None` or a value of its
//!   callback type ([`CompletionCallback::new`]).  A panic in a callback makes the callback fail
//!   and is resumed by the method during which it ran.
//! - Asynchronous reads and writes take an [`AioBuffer`], which the command leases until it
//!   retires, so the library never writes to memory Rust code is reading.
//! - A concurrent writer thread of the application's own takes a [`WriterChannel`]
//!   ([`Handle::writer_channel`], [`Handle::spawn_writer_thread`]): it holds no handle, so it
//!   ends when the handle is dropped.
//!
//! ```no_run
//! # fn main() -> nbd::Result<()> {
//! let h = nbd::Handle::new()?;
//! h.connect_uri("nbd+unix:///?socket=/tmp/nbd.sock")?;
//! let mut buf = vec![0u8; 512];
//! h.pread(&mut buf, 0, None)?;
//! h.pwrite(&buf, 512, nbd::CmdFlags::FUA)?;
//! println!("{} bytes", h.get_size()?);
//! # Ok(())
//! # }
//! ```
#![warn(missing_docs)]
#![deny(unsafe_op_in_unsafe_fn)]

use std::ffi::{c_char, c_int, c_uint, c_void};

mod buffer;
mod callback;
mod error;
mod handle;
mod sockaddr;
pub mod sys;
mod writer;

pub use buffer::{AioBuffer, BufferMut, BufferRef};
pub use callback::set_errno;
pub use error::{Error, Result};
pub use handle::Handle;
pub use sockaddr::SockAddr;
pub use writer::WriterChannel;

/// One extent of a 64-bit block status answer, as [`Handle::block_status_64`] and
/// [`Handle::block_status_filter`] pass them to their callback: `length` bytes (never more than
/// `i64::MAX`) with the context-specific status `flags`.  Laid out as C's `nbd_extent`; libnbd's
/// own crate uses the same name and fields.
#[repr(C)]
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Hash)]
pub struct NbdExtent {
    /// Length of the extent in bytes.
    pub length: u64,
    /// Status flags, whose meaning depends on the metadata context.
    pub flags: u64,
}

/// What the `libnbd` crate (bindings/rust/libnbd: libnbd's own crate's API on this one) is built
/// on: the closure boxing and panic relay, callback argument views and descriptor hand-over.
/// Not part of this crate's API.
#[doc(hidden)]
pub mod __compat {
    use std::os::fd::OwnedFd;

    pub use crate::callback::{
        bytes_arg, cstr_bytes_arg, extents_arg, free_box, int_arg, invoke, take_c_bytes, u32s_arg,
        CStringList, CallScope,
    };
    pub use crate::handle::FdHandOver;
    use crate::{callback::ClosureBox, Error, Handle};

    /// The `user_data` of a closure whose `.free` is [`free_box::<F>`].
    pub fn closure_into_raw<F: ?Sized>(f: Box<F>) -> *mut std::ffi::c_void {
        ClosureBox::<F>::into_raw(Some(f), None)
    }

    /// Prepares to give `fd` to a call that connects through it (or to `poll2`, which closes
    /// it afterwards).
    pub fn hand_over(h: &Handle, fd: OwnedFd) -> FdHandOver<'_> {
        h.hand_over(fd)
    }

    /// The error the last failed call on `h` recorded in this thread.
    pub fn last_error(h: &Handle) -> Error {
        h.last_error()
    }
}

// Enums, flag sets, constants, callback types and the methods of Handle.
include!(concat!(env!("NBDPP_RUST_GENERATED"), "/api.rs"));
