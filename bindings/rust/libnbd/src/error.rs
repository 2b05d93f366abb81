// error.rs: Error, ErrorKind, FatalErrorKind and Errno as libnbd's crate has them, and Result.
use std::error::Error as StdError;
use std::ffi::NulError;
use std::fmt;
use std::io;

/// `Result` with [`Error`] as the error type.
pub type Result<T, E = Error> = std::result::Result<T, E>;

/// A failed call, told apart by what is left of the handle.
#[derive(Debug)]
pub enum Error {
    /// The call failed but the handle is not dead: further calls may succeed.
    Recoverable(ErrorKind),
    /// The handle is dead (or could not be created): further calls are pointless.
    Fatal(FatalErrorKind),
}

/// What the library said about a failure.
#[derive(Debug)]
pub enum ErrorKind {
    /// A message with an errno value.
    WithErrno {
        /// The errno value.
        errno: Errno,
        /// The library's message, which starts with the name of the C call.
        description: String,
    },
    /// A message without an errno value.
    WithoutErrno {
        /// The message.
        description: String,
    },
    /// An errno value without a message.
    Errno(Errno),
}

/// What made a handle unusable.
#[derive(Debug)]
pub enum FatalErrorKind {
    /// The library reported it.
    Libnbd(ErrorKind),
    /// An I/O error of the program's own.
    Io(io::Error),
}

/// An errno value (`EIO` is `Errno(5)` on Linux), in the shape of the `errno` crate's type
/// that libnbd's crate puts in its errors: the number is the public field `.0`.
#[derive(Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Errno(pub i32);

impl Errno {
    /// The system's description of the value (`strerror`).
    fn strerror(self) -> String {
        let text = io::Error::from_raw_os_error(self.0).to_string();
        // std appends " (os error N)" to strerror's text.
        let suffix = format!(" (os error {})", self.0);
        text.strip_suffix(&suffix).map(str::to_owned).unwrap_or(text)
    }
}

impl fmt::Display for Errno {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.strerror())
    }
}

impl fmt::Debug for Errno {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Errno")
            .field("code", &self.0)
            .field("description", &Some(self.strerror()))
            .finish()
    }
}

impl StdError for Errno {}

impl From<Errno> for i32 {
    fn from(e: Errno) -> i32 {
        e.0
    }
}

impl From<Errno> for io::Error {
    fn from(e: Errno) -> io::Error {
        io::Error::from_raw_os_error(e.0)
    }
}

impl ErrorKind {
    /// An error with this errno value and no message.
    pub fn from_errno(val: i32) -> Self {
        ErrorKind::Errno(Errno(val))
    }

    /// The errno value, if there is one.
    pub fn errno(&self) -> Option<i32> {
        match self {
            ErrorKind::WithErrno { errno, .. } | ErrorKind::Errno(errno) => Some(errno.0),
            ErrorKind::WithoutErrno { .. } => None,
        }
    }

    // The errno (0: none) and message an nbd::Error holds.
    fn from_nbd(e: &nbd::Error) -> Self {
        let description = e.message().to_owned();
        match e.errno() {
            0 => ErrorKind::WithoutErrno { description },
            errno => ErrorKind::WithErrno { errno: Errno(errno), description },
        }
    }
}

impl Error {
    /// The errno value, if there is one.
    pub fn errno(&self) -> Option<i32> {
        match self {
            Error::Recoverable(e) | Error::Fatal(FatalErrorKind::Libnbd(e)) => e.errno(),
            Error::Fatal(FatalErrorKind::Io(e)) => e.raw_os_error(),
        }
    }

    /// Whether the handle is dead.
    pub fn is_fatal(&self) -> bool {
        matches!(self, Error::Fatal(_))
    }

    /// Whether the handle may still be used.
    pub fn is_recoverable(&self) -> bool {
        matches!(self, Error::Recoverable(_))
    }

    /// The error as a [`FatalErrorKind`], whichever it was.
    pub fn to_fatal(self) -> FatalErrorKind {
        match self {
            Error::Fatal(e) => e,
            Error::Recoverable(e) => FatalErrorKind::Libnbd(e),
        }
    }

    /// A failure to create a handle: fatal, there is no handle.
    pub(crate) fn not_created(e: &nbd::Error) -> Self {
        Error::Fatal(FatalErrorKind::Libnbd(ErrorKind::from_nbd(e)))
    }
}

/// An error of the nbd crate: fatal when it left the handle dead.
impl From<nbd::Error> for Error {
    fn from(e: nbd::Error) -> Self {
        let kind = ErrorKind::from_nbd(&e);
        if e.is_fatal() {
            Error::Fatal(FatalErrorKind::Libnbd(kind))
        } else {
            Error::Recoverable(kind)
        }
    }
}

impl From<io::Error> for Error {
    fn from(e: io::Error) -> Self {
        Error::Fatal(FatalErrorKind::Io(e))
    }
}

impl From<String> for Error {
    fn from(description: String) -> Self {
        Error::Recoverable(ErrorKind::WithoutErrno { description })
    }
}

/// A string argument with a NUL byte in it.
impl From<NulError> for Error {
    fn from(e: NulError) -> Self {
        e.to_string().into()
    }
}

impl From<Errno> for ErrorKind {
    fn from(e: Errno) -> Self {
        ErrorKind::Errno(e)
    }
}

impl From<ErrorKind> for FatalErrorKind {
    fn from(e: ErrorKind) -> Self {
        FatalErrorKind::Libnbd(e)
    }
}

impl From<io::Error> for FatalErrorKind {
    fn from(e: io::Error) -> Self {
        FatalErrorKind::Io(e)
    }
}

impl fmt::Display for Error {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Error::Recoverable(e) => e.fmt(f),
            Error::Fatal(e) => write!(f, "Fatal: NBD handle is dead: {e}"),
        }
    }
}

impl fmt::Display for ErrorKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            ErrorKind::WithErrno { errno, description } => {
                write!(f, "Errno: {errno}: {description}")
            }
            ErrorKind::WithoutErrno { description } => f.write_str(description),
            ErrorKind::Errno(errno) => errno.fmt(f),
        }
    }
}

impl fmt::Display for FatalErrorKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            FatalErrorKind::Libnbd(e) => e.fmt(f),
            FatalErrorKind::Io(e) => e.fmt(f),
        }
    }
}

impl StdError for Error {
    fn source(&self) -> Option<&(dyn StdError + 'static)> {
        match self {
            Error::Recoverable(e) => e.source(),
            Error::Fatal(_) => None,
        }
    }
}

impl StdError for ErrorKind {}

impl StdError for FatalErrorKind {
    fn source(&self) -> Option<&(dyn StdError + 'static)> {
        match self {
            FatalErrorKind::Libnbd(e) => e.source(),
            FatalErrorKind::Io(e) => e.source(),
        }
    }
}
