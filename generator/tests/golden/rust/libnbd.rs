// libnbd.rs: the per-call part of the libnbd crate (bindings/rust/libnbd), libnbd's own Rust API
// on nbdpp: its type names, constants and one Handle method per call of api.yaml that libnbd has
// (included by src/lib.rs as the module `bindings`).
// GENERATED from api.yaml by generator/generate.py: DO NOT EDIT.
//
// Each method converts its arguments (closures last: from then on the C library owns them),
// makes the C call through nbd::sys inside a CallScope (which hands a callback's panic back to
// this thread) and turns a failure into an Error.

use std::ffi::{c_char, c_int, c_uint, c_void, CString};
use std::net::SocketAddr;
use std::os::fd::{OwnedFd, RawFd};
use std::path::PathBuf;

use nbd::__compat::{self as rt, free_box, invoke, CallScope};
use nbd::sys;

use crate::handle::{c_string_list, path_c_string, static_bytes, unknown_value};
use crate::types::{Cookie, NbdExtent};
use crate::{Error, Handle, Result};

// Enums and flag sets: the nbd crate's, which has libnbd's names for them too.
pub use nbd::{
    CmdFlag,
    Mode,
    Strict,
};

/// C: `LIBNBD_READ_DATA`.
pub const READ_DATA: u32 = 1;

/// C: `LIBNBD_READ_HOLE`.
pub const READ_HOLE: u32 = 2;

/// The "base:" metadata context namespace
///
/// C: `LIBNBD_NAMESPACE_BASE`.
pub const NAMESPACE_BASE: &[u8] = b"base:";

/// The "base:allocation" metadata context
///
/// C: `LIBNBD_CONTEXT_BASE_ALLOCATION`.
pub const CONTEXT_BASE_ALLOCATION: &[u8] = b"base:allocation";

/// The "base:dirty-bitmap:" metadata context
///
/// C: `LIBNBD_CONTEXT_BASE_DIRTY_BITMAP`.
pub const CONTEXT_BASE_DIRTY_BITMAP: &[u8] = b"base:dirty-bitmap:";

/// C: `LIBNBD_STATE_HOLE`.
pub const STATE_HOLE: u32 = 1;

type CompletionFn = dyn FnMut(&mut c_int) -> c_int + Send + 'static;

// The C closure for f; None is the C API's NBD_NULL_COMPLETION.
fn completion_to_c(
    f: Option<impl FnMut(&mut c_int) -> c_int + Send + Sync + 'static>,
) -> sys::nbd_completion_callback {
    match f {
        Some(f) => {
            let f: Box<CompletionFn> = Box::new(f);
            sys::nbd_completion_callback {
                callback: Some(completion_trampoline),
                user_data: rt::closure_into_raw(f),
                free: Some(free_box::<CompletionFn>),
            }
        }
        None => sys::nbd_completion_callback {
            callback: None,
            user_data: std::ptr::null_mut(),
            free: None,
        },
    }
}

unsafe extern "C" fn completion_trampoline(user_data: *mut c_void, error: *mut c_int) -> c_int {
    unsafe {
        invoke::<CompletionFn>(user_data, error, |f| {
            let mut error_slot = 0;
            let error = rt::int_arg(error, &mut error_slot);
            f(error)
        })
    }
}

type ChunkFn = dyn FnMut(&[u8], u64, c_uint, &mut c_int) -> c_int + Send + 'static;

// The C closure for f; None is the C API's NBD_NULL_CHUNK.
fn chunk_to_c(
    f: Option<impl FnMut(&[u8], u64, c_uint, &mut c_int) -> c_int + Send + Sync + 'static>,
) -> sys::nbd_chunk_callback {
    match f {
        Some(f) => {
            let f: Box<ChunkFn> = Box::new(f);
            sys::nbd_chunk_callback {
                callback: Some(chunk_trampoline),
                user_data: rt::closure_into_raw(f),
                free: Some(free_box::<ChunkFn>),
            }
        }
        None => sys::nbd_chunk_callback {
            callback: None,
            user_data: std::ptr::null_mut(),
            free: None,
        },
    }
}

unsafe extern "C" fn chunk_trampoline(
    user_data: *mut c_void,
    subbuf: *const c_void,
    count: usize,
    offset: u64,
    status: c_uint,
    error: *mut c_int,
) -> c_int {
    unsafe {
        invoke::<ChunkFn>(user_data, error, |f| {
            let subbuf = rt::bytes_arg(subbuf, count);
            let mut error_slot = 0;
            let error = rt::int_arg(error, &mut error_slot);
            f(subbuf, offset, status, error)
        })
    }
}

type DebugFn = dyn FnMut(&[u8], &[u8]) -> c_int + Send + 'static;

// The C closure for f; None is the C API's NBD_NULL_DEBUG.
fn debug_to_c(
    f: Option<impl FnMut(&[u8], &[u8]) -> c_int + Send + Sync + 'static>,
) -> sys::nbd_debug_callback {
    match f {
        Some(f) => {
            let f: Box<DebugFn> = Box::new(f);
            sys::nbd_debug_callback {
                callback: Some(debug_trampoline),
                user_data: rt::closure_into_raw(f),
                free: Some(free_box::<DebugFn>),
            }
        }
        None => sys::nbd_debug_callback {
            callback: None,
            user_data: std::ptr::null_mut(),
            free: None,
        },
    }
}

unsafe extern "C" fn debug_trampoline(
    user_data: *mut c_void,
    context: *const c_char,
    msg: *const c_char,
) -> c_int {
    unsafe {
        invoke::<DebugFn>(user_data, std::ptr::null_mut(), |f| {
            let context = rt::cstr_bytes_arg(context);
            let msg = rt::cstr_bytes_arg(msg);
            f(context, msg)
        })
    }
}

type WriterFn = dyn FnMut(&[u8]) -> c_int + Send + 'static;

// The C closure for f; None is the C API's NBD_NULL_WRITER.
fn writer_to_c(
    f: Option<impl FnMut(&[u8]) -> c_int + Send + Sync + 'static>,
) -> sys::nbd_writer_callback {
    match f {
        Some(f) => {
            let f: Box<WriterFn> = Box::new(f);
            sys::nbd_writer_callback {
                callback: Some(writer_trampoline),
                user_data: rt::closure_into_raw(f),
                free: Some(free_box::<WriterFn>),
            }
        }
        None => sys::nbd_writer_callback {
            callback: None,
            user_data: std::ptr::null_mut(),
            free: None,
        },
    }
}

unsafe extern "C" fn writer_trampoline(
    user_data: *mut c_void,
    buf: *const c_void,
    len: usize,
) -> c_int {
    unsafe {
        invoke::<WriterFn>(user_data, std::ptr::null_mut(), |f| {
            let buf = rt::bytes_arg(buf, len);
            f(buf)
        })
    }
}

type Extent64Fn = dyn FnMut(&[u8], u64, &[NbdExtent], &mut c_int) -> c_int + Send + 'static;

// The C closure for f; None is the C API's NBD_NULL_EXTENT64.
fn extent64_to_c(
    f: Option<impl FnMut(&[u8], u64, &[NbdExtent], &mut c_int) -> c_int + Send + Sync + 'static>,
) -> sys::nbd_extent64_callback {
    match f {
        Some(f) => {
            let f: Box<Extent64Fn> = Box::new(f);
            sys::nbd_extent64_callback {
                callback: Some(extent64_trampoline),
                user_data: rt::closure_into_raw(f),
                free: Some(free_box::<Extent64Fn>),
            }
        }
        None => sys::nbd_extent64_callback {
            callback: None,
            user_data: std::ptr::null_mut(),
            free: None,
        },
    }
}

unsafe extern "C" fn extent64_trampoline(
    user_data: *mut c_void,
    metacontext: *const c_char,
    offset: u64,
    entries: *mut crate::NbdExtent,
    nr_entries: usize,
    error: *mut c_int,
) -> c_int {
    unsafe {
        invoke::<Extent64Fn>(user_data, error, |f| {
            let metacontext = rt::cstr_bytes_arg(metacontext);
            let entries = rt::extents_arg(entries, nr_entries);
            let mut error_slot = 0;
            let error = rt::int_arg(error, &mut error_slot);
            f(metacontext, offset, entries, error)
        })
    }
}

impl Handle {
    /// Choose the mode.
    ///
    /// Sets the mode; see [`Handle::get_mode`].
    ///
    /// - [`Mode::Busy`] keeps it busy
    /// - [`Mode::Idle`] lets it rest
    ///
    /// The handle must be newly created.
    ///
    /// See also [`Handle::get_mode`].
    ///
    /// C: `nbd_set_mode(3)`.
    pub fn set_mode(&self, mode: Mode) -> Result<()> {
        let scope = CallScope::enter();
        let r = unsafe { sys::nbd_set_mode(self.raw(), mode as c_int) };
        scope.finish();
        if r == -1 {
            return Err(self.last_error());
        }
        Ok(())
    }

    /// Read the mode.
    ///
    /// Returns the mode.
    ///
    /// C: `nbd_get_mode(3)`.
    pub fn get_mode(&self) -> Mode {
        let scope = CallScope::enter();
        let r = unsafe { sys::nbd_get_mode(self.raw()) };
        scope.finish();
        Mode::from_c_value(r).expect("a known value")
    }

    /// The library version.
    ///
    /// Returns the version of the library.
    ///
    /// C: `nbd_get_version(3)`.
    pub fn get_version(&self) -> &'static [u8] {
        let scope = CallScope::enter();
        let r = unsafe { sys::nbd_get_version(self.raw()) };
        scope.finish();
        if r.is_null() { b"" } else { unsafe { static_bytes(r) } }
    }

    /// Read data.
    ///
    /// Reads into buf:
    ///
    /// ```text
    /// nbd_pread (h, buf, sizeof buf, 0, 0);
    /// ```
    ///
    /// The handle must be connected with the server.
    ///
    /// # Errors
    ///
    /// - `ERANGE`: count is more than the buf can take.
    ///
    /// See also [`Handle::aio_pread`].
    ///
    /// C: `nbd_pread(3)`.
    pub fn pread(&self, buf: &mut [u8], offset: u64, flags: Option<CmdFlag>) -> Result<()> {
        let scope = CallScope::enter();
        let r = unsafe {
            sys::nbd_pread(
                self.raw(),
                buf.as_mut_ptr() as *mut c_void,
                buf.len(),
                offset,
                flags.unwrap_or_default().bits(),
            )
        };
        scope.finish();
        if r == -1 {
            return Err(self.last_error());
        }
        Ok(())
    }

    /// Start reading data.
    ///
    /// Starts a read; the `nbd_chunk_callback` sees each chunk.
    ///
    /// The command keeps using `buf` after this call has returned, until it retires; hence the
    /// `'static` borrow (from `Box::leak`, for instance), as in libnbd's crate. The completion
    /// callback runs once the library is done with it.
    ///
    /// The handle must be connected with the server.
    ///
    /// See also [`Handle::pread`].
    ///
    /// C: `nbd_aio_pread(3)`.
    pub fn aio_pread(
        &self,
        buf: &'static mut [u8],
        offset: u64,
        chunk_callback: impl FnMut(&[u8], u64, c_uint, &mut c_int) -> c_int
            + Send
            + Sync
            + 'static,
        completion_callback: Option<impl FnMut(&mut c_int) -> c_int + Send + Sync + 'static>,
        flags: Option<CmdFlag>,
    ) -> Result<Cookie> {
        let chunk_callback = chunk_to_c(Some(chunk_callback));
        let completion_callback = completion_to_c(completion_callback);
        let scope = CallScope::enter();
        let r = unsafe {
            sys::nbd_aio_pread(
                self.raw(),
                buf.as_mut_ptr() as *mut c_void,
                buf.len(),
                offset,
                chunk_callback,
                completion_callback,
                flags.unwrap_or_default().bits(),
            )
        };
        scope.finish();
        if r == -1 {
            return Err(self.last_error());
        }
        Ok(Cookie(r as u64))
    }

    /// Set the debug callback.
    ///
    /// Sends debug messages to a callback.
    ///
    /// C: `nbd_set_debug_callback(3)`.
    pub fn set_debug_callback(
        &self,
        debug_callback: impl FnMut(&[u8], &[u8]) -> c_int + Send + Sync + 'static,
    ) -> Result<()> {
        let debug_callback = debug_to_c(Some(debug_callback));
        let scope = CallScope::enter();
        let r = unsafe { sys::nbd_set_debug_callback(self.raw(), debug_callback) };
        scope.finish();
        if r == -1 {
            return Err(self.last_error());
        }
        Ok(())
    }

    /// Describe a range.
    ///
    /// Calls the `nbd_extent64_callback` once per context in contexts.
    ///
    /// The handle must be connected with the server.
    ///
    /// C: `nbd_block_status_64(3)`.
    pub fn block_status_64(
        &self,
        count: u64,
        offset: u64,
        contexts: impl IntoIterator<Item = impl AsRef<[u8]>>,
        extent64_callback: impl FnMut(&[u8], u64, &[NbdExtent], &mut c_int) -> c_int
            + Send
            + Sync
            + 'static,
    ) -> Result<()> {
        let mut contexts = c_string_list(contexts)?;
        let extent64_callback = extent64_to_c(Some(extent64_callback));
        let scope = CallScope::enter();
        let r = unsafe {
            sys::nbd_block_status_64(
                self.raw(),
                count,
                offset,
                contexts.as_mut_ptr(),
                extent64_callback,
            )
        };
        scope.finish();
        if r == -1 {
            return Err(self.last_error());
        }
        Ok(())
    }

    /// Get the handle name.
    ///
    /// Returns a copy the caller frees.
    ///
    /// C: `nbd_get_name(3)`.
    pub fn get_name(&self) -> Result<Vec<u8>> {
        let scope = CallScope::enter();
        let r = unsafe { sys::nbd_get_name(self.raw()) };
        scope.finish();
        if r.is_null() {
            return Err(self.last_error());
        }
        Ok(unsafe { rt::take_c_bytes(r) })
    }

    /// Count bytes sent.
    ///
    /// Returns how many bytes were sent.
    ///
    /// C: `nbd_stats_bytes_sent(3)`.
    pub fn stats_bytes_sent(&self) -> Result<u64> {
        let scope = CallScope::enter();
        let r = unsafe { sys::nbd_stats_bytes_sent(self.raw()) };
        scope.finish();
        Ok(r)
    }

    /// Connect over AF_VSOCK.
    ///
    /// Connects to port on the host with context identifier cid.
    ///
    /// The handle must be newly created.
    ///
    /// C: `nbd_connect_vsock(3)`.
    pub fn connect_vsock(&self, cid: u32, port: u32) -> Result<()> {
        let scope = CallScope::enter();
        let r = unsafe { sys::nbd_connect_vsock(self.raw(), cid, port) };
        scope.finish();
        if r == -1 {
            return Err(self.last_error());
        }
        Ok(())
    }

    /// Turn debug messages on or off.
    ///
    /// Turns debug messages on or off; `LIBNBD_DEBUG` sets the default.
    ///
    /// See also [`Handle::get_debug`], [`Handle::set_debug_callback`].
    ///
    /// C: `nbd_set_debug(3)`.
    pub fn set_debug(&self, debug: bool) -> Result<()> {
        let scope = CallScope::enter();
        let r = unsafe { sys::nbd_set_debug(self.raw(), debug) };
        scope.finish();
        if r == -1 {
            return Err(self.last_error());
        }
        Ok(())
    }

    /// Whether debug messages are on.
    ///
    /// Returns whether debug messages are on.
    ///
    /// See also [`Handle::set_debug`].
    ///
    /// C: `nbd_get_debug(3)`.
    pub fn get_debug(&self) -> bool {
        let scope = CallScope::enter();
        let r = unsafe { sys::nbd_get_debug(self.raw()) };
        scope.finish();
        r != 0
    }

    /// Name the handle.
    ///
    /// Sets the name debug messages start with.
    ///
    /// See also [`Handle::get_name`].
    ///
    /// C: `nbd_set_handle_name(3)`.
    pub fn set_handle_name(&self, handle_name: impl Into<Vec<u8>>) -> Result<()> {
        let handle_name = CString::new(handle_name)?;
        let scope = CallScope::enter();
        let r = unsafe { sys::nbd_set_handle_name(self.raw(), handle_name.as_ptr()) };
        scope.finish();
        if r == -1 {
            return Err(self.last_error());
        }
        Ok(())
    }

    /// Choose the client-side checks.
    ///
    /// Chooses which requests the library refuses before they reach the server.
    ///
    /// See also [`Handle::get_strict_mode`].
    ///
    /// C: `nbd_set_strict_mode(3)`.
    pub fn set_strict_mode(&self, flags: Strict) -> Result<()> {
        let scope = CallScope::enter();
        let r = unsafe { sys::nbd_set_strict_mode(self.raw(), flags.bits()) };
        scope.finish();
        if r == -1 {
            return Err(self.last_error());
        }
        Ok(())
    }

    /// The client-side checks in force.
    ///
    /// Returns the checks set with [`Handle::set_strict_mode`].
    ///
    /// C: `nbd_get_strict_mode(3)`.
    pub fn get_strict_mode(&self) -> Strict {
        let scope = CallScope::enter();
        let r = unsafe { sys::nbd_get_strict_mode(self.raw()) };
        scope.finish();
        Strict::from_bits_retain(r)
    }

    /// Keep a value in the handle.
    ///
    /// Keeps a value of the caller's in the handle and returns the previous one.
    ///
    /// C: `nbd_set_private_data(3)`.
    pub fn set_private_data(&self, private_data: usize) -> usize {
        let scope = CallScope::enter();
        let r = unsafe { sys::nbd_set_private_data(self.raw(), private_data) };
        scope.finish();
        r
    }

    /// Connect over a Unix domain socket.
    ///
    /// Connects to the server listening on unixsocket.
    ///
    /// The handle must be newly created.
    ///
    /// # Errors
    ///
    /// - `ENAMETOOLONG`: unixsocket does not fit in a Unix socket address.
    ///
    /// C: `nbd_connect_unix(3)`.
    pub fn connect_unix(&self, unixsocket: impl Into<PathBuf>) -> Result<()> {
        let unixsocket = path_c_string(unixsocket.into())?;
        let scope = CallScope::enter();
        let r = unsafe { sys::nbd_connect_unix(self.raw(), unixsocket.as_ptr()) };
        scope.finish();
        if r == -1 {
            return Err(self.last_error());
        }
        Ok(())
    }

    /// Connect over a connected socket.
    ///
    /// Talks to the server over sock, which the handle takes over.
    ///
    /// `sock` is handed over in any case: the handle keeps it if it took it (on success, or on a
    /// failure after the state check, such as a failed handshake), and a descriptor the call
    /// refused is closed here.
    ///
    /// The handle must be newly created.
    ///
    /// C: `nbd_connect_socket(3)`.
    pub fn connect_socket(&self, sock: OwnedFd) -> Result<()> {
        let sock = rt::hand_over(&self.inner, sock);
        let scope = CallScope::enter();
        let r = unsafe { sys::nbd_connect_socket(self.raw(), sock.raw()) };
        scope.finish();
        if r == -1 {
            return Err(self.last_error());
        }
        Ok(())
    }

    /// Start connecting to a socket address.
    ///
    /// Starts connecting to addr; [`Handle::poll`] drives the handshake.
    ///
    /// The handle must be newly created.
    ///
    /// See also [`Handle::poll`].
    ///
    /// C: `nbd_aio_connect(3)`.
    pub fn aio_connect(&self, addr: SocketAddr) -> Result<()> {
        let addr = nbd::SockAddr::from(addr);
        let scope = CallScope::enter();
        let r = unsafe { sys::nbd_aio_connect(self.raw(), addr.as_ptr(), addr.socklen()) };
        scope.finish();
        if r == -1 {
            return Err(self.last_error());
        }
        Ok(())
    }

    /// The protocol the server speaks.
    ///
    /// Returns "newstyle" or "newstyle-fixed".
    ///
    /// The handle must be connected with the server.
    ///
    /// C: `nbd_get_protocol(3)`.
    pub fn get_protocol(&self) -> Result<&'static [u8]> {
        let scope = CallScope::enter();
        let r = unsafe { sys::nbd_get_protocol(self.raw()) };
        scope.finish();
        if r.is_null() {
            return Err(self.last_error());
        }
        Ok(unsafe { static_bytes(r) })
    }

    /// The size of the export.
    ///
    /// Returns the size of the export in bytes.
    ///
    /// The handle must be connected with the server.
    ///
    /// C: `nbd_get_size(3)`.
    pub fn get_size(&self) -> Result<u64> {
        let scope = CallScope::enter();
        let r = unsafe { sys::nbd_get_size(self.raw()) };
        scope.finish();
        if r == -1 {
            return Err(self.last_error());
        }
        Ok(r as u64)
    }

    /// Count the metadata contexts.
    ///
    /// Returns how many metadata contexts [`Handle::get_meta_context`] can return.
    ///
    /// C: `nbd_get_nr_meta_contexts(3)`.
    pub fn get_nr_meta_contexts(&self) -> Result<usize> {
        let scope = CallScope::enter();
        let r = unsafe { sys::nbd_get_nr_meta_contexts(self.raw()) };
        scope.finish();
        if r == -1 {
            return Err(self.last_error());
        }
        Ok(r as usize)
    }

    /// A metadata context by index.
    ///
    /// Returns a copy of metadata context i, which the caller frees.
    ///
    /// See also [`Handle::get_nr_meta_contexts`].
    ///
    /// C: `nbd_get_meta_context(3)`.
    pub fn get_meta_context(&self, i: usize) -> Result<Vec<u8>> {
        let scope = CallScope::enter();
        let r = unsafe { sys::nbd_get_meta_context(self.raw(), i) };
        scope.finish();
        if r.is_null() {
            return Err(self.last_error());
        }
        Ok(unsafe { rt::take_c_bytes(r) })
    }

    /// Write data.
    ///
    /// Writes buf at offset.
    ///
    /// The handle must be connected with the server.
    ///
    /// See also [`Handle::aio_pwrite`].
    ///
    /// C: `nbd_pwrite(3)`.
    pub fn pwrite(&self, buf: &[u8], offset: u64, flags: Option<CmdFlag>) -> Result<()> {
        let scope = CallScope::enter();
        let r = unsafe {
            sys::nbd_pwrite(
                self.raw(),
                buf.as_ptr() as *const c_void,
                buf.len(),
                offset,
                flags.unwrap_or_default().bits(),
            )
        };
        scope.finish();
        if r == -1 {
            return Err(self.last_error());
        }
        Ok(())
    }

    /// Start writing data.
    ///
    /// Starts a write of buf at offset.
    ///
    /// The command keeps using `buf` after this call has returned, until it retires; hence the
    /// `'static` borrow (from `Box::leak`, for instance), as in libnbd's crate. The completion
    /// callback runs once the library is done with it.
    ///
    /// The handle must be connected with the server.
    ///
    /// See also [`Handle::pwrite`].
    ///
    /// C: `nbd_aio_pwrite(3)`.
    pub fn aio_pwrite(
        &self,
        buf: &'static [u8],
        offset: u64,
        completion_callback: Option<impl FnMut(&mut c_int) -> c_int + Send + Sync + 'static>,
        flags: Option<CmdFlag>,
    ) -> Result<Cookie> {
        let completion_callback = completion_to_c(completion_callback);
        let scope = CallScope::enter();
        let r = unsafe {
            sys::nbd_aio_pwrite(
                self.raw(),
                buf.as_ptr() as *const c_void,
                buf.len(),
                offset,
                completion_callback,
                flags.unwrap_or_default().bits(),
            )
        };
        scope.finish();
        if r == -1 {
            return Err(self.last_error());
        }
        Ok(Cookie(r as u64))
    }

    /// Wait for the handle.
    ///
    /// Waits up to timeout milliseconds for the socket and runs the handle; returns 1 when it made
    /// progress and 0 on timeout.
    ///
    /// See also [`Handle::aio_get_fd`].
    ///
    /// C: `nbd_poll(3)`.
    pub fn poll(&self, timeout: c_int) -> Result<c_uint> {
        let scope = CallScope::enter();
        let r = unsafe { sys::nbd_poll(self.raw(), timeout) };
        scope.finish();
        if r == -1 {
            return Err(self.last_error());
        }
        Ok(r as c_uint)
    }

    /// The socket of the handle.
    ///
    /// Returns the file descriptor to poll for [`Handle::aio_get_direction`].
    ///
    /// See also [`Handle::aio_get_direction`].
    ///
    /// C: `nbd_aio_get_fd(3)`.
    pub fn aio_get_fd(&self) -> Result<RawFd> {
        let scope = CallScope::enter();
        let r = unsafe { sys::nbd_aio_get_fd(self.raw()) };
        scope.finish();
        if r == -1 {
            return Err(self.last_error());
        }
        Ok(r)
    }

    /// What the handle waits for.
    ///
    /// Returns 1 when the handle waits to read, 2 when to write, 3 for both.
    ///
    /// C: `nbd_aio_get_direction(3)`.
    pub fn aio_get_direction(&self) -> c_uint {
        let scope = CallScope::enter();
        let r = unsafe { sys::nbd_aio_get_direction(self.raw()) };
        scope.finish();
        r
    }

    /// Send outgoing data through an application thread.
    ///
    /// Hands every piece of data the handle sends to the `nbd_writer_callback`.
    ///
    /// The handle must be newly created, or connected with the server.
    ///
    /// # Errors
    ///
    /// - `EINVAL`: The handle already has a concurrent writer.
    ///
    /// See also [`Handle::concurrent_writer_error`].
    ///
    /// C: `nbd_set_concurrent_writer(3)`.
    pub fn set_concurrent_writer(
        &self,
        writer: impl FnMut(&[u8]) -> c_int + Send + Sync + 'static,
    ) -> Result<()> {
        let writer = writer_to_c(Some(writer));
        let scope = CallScope::enter();
        let r = unsafe { sys::nbd_set_concurrent_writer(self.raw(), writer) };
        scope.finish();
        if r == -1 {
            return Err(self.last_error());
        }
        Ok(())
    }

    /// Report a send failure from the concurrent writer.
    ///
    /// Tells the handle that the writer thread failed with errno err.
    ///
    /// See also [`Handle::set_concurrent_writer`].
    ///
    /// C: `nbd_concurrent_writer_error(3)`.
    pub fn concurrent_writer_error(&self, err: c_int) -> Result<()> {
        let scope = CallScope::enter();
        let r = unsafe { sys::nbd_concurrent_writer_error(self.raw(), err) };
        scope.finish();
        if r == -1 {
            return Err(self.last_error());
        }
        Ok(())
    }
}
