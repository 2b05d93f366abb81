// error.rs: nbd::Error, what a failed call returns, and nbd::Result.
use std::fmt;
use std::io;

use crate::sys;

/// `Result` with [`Error`] as the error type.
pub type Result<T, E = Error> = std::result::Result<T, E>;

/// A failed call: the errno and message the C library recorded (`nbd_get_errno`,
/// `nbd_get_error`), and whether the handle was dead afterwards.
///
/// A *fatal* error leaves the handle dead (see [`crate::Handle::aio_is_dead`]): the connection is
/// gone and the handle can only be dropped.  A *recoverable* one (a bad argument, a call in the
/// wrong state, the server failing one command) leaves the handle usable.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Error {
    errno: i32,
    message: String,
    fatal: bool,
}

// errno values this crate reports itself (Linux).
pub(crate) const EINVAL: i32 = 22;
pub(crate) const EBUSY: i32 = 16;
pub(crate) const EPROTO: i32 = 71;
pub(crate) const ECANCELED: i32 = 125;

impl Error {
    /// A recoverable error with this errno and message.
    pub fn new(errno: i32, message: impl Into<String>) -> Self {
        Error { errno, message: message.into(), fatal: false }
    }

    /// The error the last failed call of this thread recorded; h is the handle it used, or
    /// null.  Must run before any other library call on this thread, which could replace the
    /// thread-local message.
    pub(crate) fn last(h: *mut sys::nbd_handle) -> Self {
        // SAFETY: nbd_get_error, nbd_get_errno and nbd_aio_is_dead take no lock and cannot
        // fail, so they leave the message alone; h is a live handle or null.
        unsafe {
            let message = sys::nbd_get_error();
            let message = if message.is_null() {
                "unknown error".to_owned()
            } else {
                crate::callback::copy_c_string(message)
            };
            let errno = sys::nbd_get_errno();
            let fatal = !h.is_null() && sys::nbd_aio_is_dead(h) != 0;
            Error { errno, message, fatal }
        }
    }

    pub(crate) fn invalid_argument(call: &str, arg: &str, why: &str) -> Self {
        Error::new(EINVAL, format!("{call}: {arg}: {why}"))
    }

    #[allow(dead_code)]
    pub(crate) fn unknown_value(call: &str, value: i32) -> Self {
        Error::new(
            EPROTO,
            format!("{call}: the library returned {value}, unknown to this binding"),
        )
    }

    /// The same error, [`Error::is_fatal`] or not as `fatal` says: for code that learns of a
    /// handle's death by itself, such as the driver of the async API (crate nbd-tokio).
    pub fn with_fatal(mut self, fatal: bool) -> Self {
        self.fatal = fatal;
        self
    }

    /// The errno value (`EINVAL`, `EIO`, ...), or 0 when the library recorded none.
    pub fn errno(&self) -> i32 {
        self.errno
    }

    /// The message, which starts with the name of the C call: `"nbd_pread: ..."`.
    pub fn message(&self) -> &str {
        &self.message
    }

    /// Whether the handle was dead after the failure: the connection is lost for good.
    pub fn is_fatal(&self) -> bool {
        self.fatal
    }

    /// Whether the handle is still usable: the opposite of [`Error::is_fatal`].
    pub fn is_recoverable(&self) -> bool {
        !self.fatal
    }

    /// The [`io::ErrorKind`] of the errno.
    pub fn kind(&self) -> io::ErrorKind {
        io::Error::from_raw_os_error(self.errno).kind()
    }
}

impl fmt::Display for Error {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.message)
    }
}

impl std::error::Error for Error {}

/// The errno survives: [`io::Error::raw_os_error`] gives it back, and the kind follows from it.
/// `std` has no `io::Error` that holds both an OS error code and a message of its own, so the
/// library's message ("nbd_pread: ...") is then `std`'s text for the errno; keep the
/// [`Error`] where the whole message matters.  An error without an errno keeps its message
/// (kind [`io::ErrorKind::Other`]).
impl From<Error> for io::Error {
    fn from(e: Error) -> io::Error {
        if e.errno != 0 {
            io::Error::from_raw_os_error(e.errno)
        } else {
            io::Error::new(io::ErrorKind::Other, e)
        }
    }
}
