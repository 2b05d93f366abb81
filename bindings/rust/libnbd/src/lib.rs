//! The API of libnbd's own Rust crate (crate `libnbd`) on nbdpp, a Network Block Device (NBD)
//! client library whose C ABI is a drop-in replacement for libnbd 1.24.
//!
//! A program written for libnbd's crate builds against this one after changing only its
//! dependency line, `libnbd = { path = "PREFIX/share/nbdpp/rust/libnbd" }`: the same [`Handle`]
//! with a method of the same name, arguments and result for every call of libnbd's C API, the
//! same [`Error`] (`Recoverable(ErrorKind)` or `Fatal(FatalErrorKind)`), enums, flag sets,
//! constants, [`Cookie`] and [`NbdExtent`].  Strings are bytes (`impl Into<Vec<u8>>` in,
//! `Vec<u8>` out), callbacks are `impl FnMut(...) -> c_int + Send + Sync + 'static` (an
//! optional one in an `Option`), and the buffers of asynchronous commands are `&'static`
//! borrows, all as there.
//!
//! What is not here: libnbd's `AsyncHandle` (its tokio API, whose futures are not cancel-safe);
//! nbdpp's asynchronous API is the crate `nbd-tokio`.  Nor is its `log` feature: debug
//! messages go to stderr, or to [`Handle::set_debug_callback`].
//!
//! The crate is generated from the same description as the C header and sits on the crate
//! `nbd`, nbdpp's own Rust API, which is the one to prefer for new code: `&str` and `String`,
//! typed optional callbacks, buffers for asynchronous commands that Rust code can still use
//! safely ([`nbd::AioBuffer`]), an error with the library's message.  [`Handle::as_nbd`] gives
//! the same handle in that API.  A panic in a callback makes the callback fail and is resumed
//! by the method during which it ran; it never unwinds into the C library.
//!
//! ```no_run
//! # fn main() -> libnbd::Result<()> {
//! let nbd = libnbd::Handle::new()?;
//! nbd.connect_uri("nbd+unix:///?socket=/tmp/nbd.sock")?;
//! let mut buf = [0u8; 512];
//! nbd.pread(&mut buf, 0, None)?;
//! nbd.pwrite(&buf, 512, Some(libnbd::CmdFlag::FUA))?;
//! let size: u64 = nbd.get_size()?;
//! println!("{size} bytes");
//! # Ok(())
//! # }
//! ```
#![warn(missing_docs)]
#![deny(unsafe_op_in_unsafe_fn)]

mod error;
mod handle;
pub mod types;

// The generated part: enum and flag names, constants, and the methods of Handle.
#[allow(unused_imports)]
mod bindings {
    include!(env!("NBDPP_LIBNBD_RS"));
}

pub use bindings::*;
pub use error::{Errno, Error, ErrorKind, FatalErrorKind, Result};
pub use handle::Handle;
pub use types::{Cookie, NbdExtent};
