//! The types libnbd's crate keeps in its `types` module (also at the crate root here).

/// The cookie of an asynchronous command, as the `aio_*` calls return it.
///
/// [`crate::Handle::aio_command_completed`] takes the number inside (`cookie.0`), as in libnbd's
/// crate.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Cookie(pub u64);

impl From<Cookie> for u64 {
    fn from(cookie: Cookie) -> u64 {
        cookie.0
    }
}

pub use nbd::NbdExtent;
