// handle.rs: nbd::Handle, an open libnbd handle; its methods are generated (api.rs).
use std::fmt;
use std::os::fd::{AsRawFd, IntoRawFd, OwnedFd, RawFd};

use crate::callback::CallScope;
use crate::error::{Error, Result};
use crate::sys;

/// An NBD client handle (`struct nbd_handle`): one connection to a server and its settings.
///
/// Every call of the C API that takes a handle is a method of the same name.  Dropping the
/// handle closes it (`nbd_close`): the connection is dropped, a server subprocess is stopped,
/// and every callback the handle still holds is freed.
///
/// A `Handle` is [`Send`] and [`Sync`]: the C library locks each handle around a call, so
/// threads may share one (in an `Arc`).  Callbacks run while the handle is locked and must not
/// call methods of the same handle.
pub struct Handle {
    pub(crate) h: *mut sys::nbd_handle,
}

// SAFETY: the C library serialises every call on a handle with its own lock (calls that take no
// lock only touch atomics), and a handle is not tied to the thread that created it.
unsafe impl Send for Handle {}
unsafe impl Sync for Handle {}

impl Handle {
    /// Creates a new, unconnected handle (`nbd_create(3)`).
    pub fn new() -> Result<Handle> {
        // SAFETY: nbd_create has no preconditions.
        let h = unsafe { sys::nbd_create() };
        if h.is_null() {
            return Err(Error::last(h));
        }
        Ok(Handle { h })
    }

    /// The C handle, for calls through [`crate::sys`]; it stays owned by `self`.
    pub fn as_raw(&self) -> *mut sys::nbd_handle {
        self.h
    }

    /// Gives up ownership without closing: the caller must `nbd_close` the result.
    pub fn into_raw(self) -> *mut sys::nbd_handle {
        std::mem::ManuallyDrop::new(self).h
    }

    /// Takes ownership of a C handle.
    ///
    /// # Safety
    /// `h` must come from `nbd_create` (or [`Handle::into_raw`]), not be closed, and not be
    /// owned by anything else.
    pub unsafe fn from_raw(h: *mut sys::nbd_handle) -> Handle {
        Handle { h }
    }

    pub(crate) fn last_error(&self) -> Error {
        Error::last(self.h)
    }

    /// Prepares to give `fd` to a call that connects through it (see [`FdHandOver`]).
    pub(crate) fn hand_over(&self, fd: OwnedFd) -> FdHandOver<'_> {
        FdHandOver { fd: Some(fd), handle: self, created_before: self.is_created() }
    }

    fn is_created(&self) -> bool {
        // SAFETY: self.h is an open handle; the call only reads its state.
        unsafe { sys::nbd_aio_is_created(self.h) == 1 }
    }
}

/// A descriptor given to `connect_socket` or `aio_connect_socket`.  The C library takes it once
/// the call is past its state check, which only a newly created handle passes, and the handle
/// then leaves that state for good, whether the call succeeds or the handshake fails.  So when
/// the hand-over is dropped, after the call (or while a callback's panic unwinds through it),
/// the descriptor is the handle's if the handle was newly created before and is not any more;
/// otherwise the call refused it, and it is closed here.  (If another thread connects the handle
/// at the same moment, the descriptor may be left open, never closed twice.)
pub struct FdHandOver<'a> {
    fd: Option<OwnedFd>,
    handle: &'a Handle,
    created_before: bool,
}

impl FdHandOver<'_> {
    /// The descriptor to pass to the C call.
    pub fn raw(&self) -> RawFd {
        self.fd.as_ref().map_or(-1, AsRawFd::as_raw_fd)
    }
}

impl Drop for FdHandOver<'_> {
    fn drop(&mut self) {
        if let Some(fd) = self.fd.take() {
            if self.created_before && !self.handle.is_created() {
                let _ = fd.into_raw_fd();  // the handle's now
            }
        }
    }
}

impl Drop for Handle {
    fn drop(&mut self) {
        // Closing may run callbacks (a debug message, free hooks); Drop must not panic, so a
        // callback's panic is dropped.
        let scope = CallScope::enter();
        // SAFETY: we own h, and nothing else can be using it (Drop has &mut).
        unsafe { sys::nbd_close(self.h) };
        scope.discard();
    }
}

impl fmt::Debug for Handle {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_tuple("Handle").field(&self.h).finish()
    }
}
