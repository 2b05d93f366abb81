// handle.rs: libnbd::Handle, an nbd::Handle under libnbd's crate's API (its methods are generated:
// libnbd.rs), and the argument and result conversions those methods use.
use std::ffi::{c_char, CStr, CString};
use std::os::unix::ffi::OsStringExt;
use std::path::PathBuf;

use nbd::__compat::CStringList;
use nbd::sys;

use crate::error::{Error, Result};

/// An NBD client handle: one connection to a server and its settings.
///
/// Every call of libnbd's C API that takes a handle is a method of the same name.  Dropping the
/// handle closes it (`nbd_close`).  A `Handle` is [`Send`] and [`Sync`]: the C library locks
/// each handle around a call.  Callbacks run while the handle is locked and must not call
/// methods of the same handle.
///
/// Underneath is an [`nbd::Handle`] ([`Handle::as_nbd`]): the nbd crate's API, with nbdpp's own
/// calls, works on the same connection.
#[derive(Debug)]
pub struct Handle {
    pub(crate) inner: nbd::Handle,
}

impl Handle {
    /// Creates a new, unconnected handle (`nbd_create(3)`); a failure is fatal.
    pub fn new() -> Result<Self> {
        match nbd::Handle::new() {
            Ok(inner) => Ok(Handle { inner }),
            Err(e) => Err(Error::not_created(&e)),
        }
    }

    /// The same handle in the nbd crate's API (and nbdpp's own calls, such as
    /// [`nbd::Handle::start_concurrent_writer`]).
    pub fn as_nbd(&self) -> &nbd::Handle {
        &self.inner
    }

    /// The handle in the nbd crate's API, which then owns it.
    pub fn into_nbd(self) -> nbd::Handle {
        self.inner
    }

    pub(crate) fn raw(&self) -> *mut sys::nbd_handle {
        self.inner.as_raw()
    }

    /// The error the last failed call on this handle recorded in this thread.
    pub(crate) fn last_error(&self) -> Error {
        nbd::__compat::last_error(&self.inner).into()
    }
}

/// A handle of the nbd crate in libnbd's crate's API.
impl From<nbd::Handle> for Handle {
    fn from(inner: nbd::Handle) -> Self {
        Handle { inner }
    }
}

// ---- Conversions of the generated methods.

/// A path argument, NUL-terminated.
pub(crate) fn path_c_string(path: PathBuf) -> Result<CString> {
    Ok(CString::new(path.into_os_string().into_vec())?)
}

/// A string list argument (an argv), NULL-terminated.
pub(crate) fn c_string_list(
    items: impl IntoIterator<Item = impl AsRef<[u8]>>,
) -> Result<CStringList> {
    let strings = items
        .into_iter()
        .map(|s| CString::new(s.as_ref()))
        .collect::<std::result::Result<Vec<CString>, _>>()?;
    Ok(CStringList::from_strings(strings))
}

/// A string the library keeps for the life of the process (non-null).
///
/// # Safety
/// `p` must be a NUL-terminated string that is never freed or changed.
pub(crate) unsafe fn static_bytes(p: *const c_char) -> &'static [u8] {
    // SAFETY: see above.
    unsafe { CStr::from_ptr(p) }.to_bytes()
}

/// An enum value this binding does not know, returned by a call that may fail.
#[allow(dead_code)] // no such call in this version of api.yaml
pub(crate) fn unknown_value(call: &str, value: i32) -> Error {
    format!("{call}: the library returned {value}, unknown to this binding").into()
}
