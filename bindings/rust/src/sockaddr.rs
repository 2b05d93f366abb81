// sockaddr.rs: SockAddr, a socket address in its C form for Handle::aio_connect.
use std::fmt;
use std::io;
use std::net::{SocketAddr, SocketAddrV4, SocketAddrV6};
use std::os::unix::ffi::OsStrExt;
use std::path::Path;

use crate::sys;

// Linux address families and sizes (sys/socket.h, netinet/in.h, sys/un.h).
const AF_UNIX: u16 = 1;
const AF_INET: u16 = 2;
const AF_INET6: u16 = 10;
const SUN_PATH_LEN: usize = 108;

#[repr(C, align(8))]
#[derive(Clone, Copy)]
struct Storage([u8; 128]); // sockaddr_storage

/// A socket address as the C library takes it (`struct sockaddr` and its length): an IPv4 or
/// IPv6 address and port, or a Unix socket path.
#[derive(Clone, Copy)]
pub struct SockAddr {
    storage: Storage,
    len: sys::socklen_t,
}

impl SockAddr {
    /// The address of the Unix domain socket at `path`; InvalidInput if the path is longer than
    /// `sun_path` holds or contains a NUL byte.
    pub fn unix(path: impl AsRef<Path>) -> io::Result<Self> {
        let bytes = path.as_ref().as_os_str().as_bytes();
        if bytes.len() >= SUN_PATH_LEN || bytes.contains(&0) {
            return Err(io::Error::new(io::ErrorKind::InvalidInput, "unusable Unix socket path"));
        }
        let mut s = SockAddr { storage: Storage([0; 128]), len: (2 + bytes.len() + 1) as u32 };
        s.storage.0[..2].copy_from_slice(&AF_UNIX.to_ne_bytes());
        s.storage.0[2..2 + bytes.len()].copy_from_slice(bytes);
        Ok(s)
    }

    /// The address family (`AF_INET`, `AF_INET6` or `AF_UNIX`).
    pub fn family(&self) -> u16 {
        u16::from_ne_bytes([self.storage.0[0], self.storage.0[1]])
    }

    /// A pointer to the `struct sockaddr`, valid as long as `self`.
    pub fn as_ptr(&self) -> *const sys::sockaddr {
        self.storage.0.as_ptr().cast()
    }

    /// The length of the address in bytes.
    pub fn socklen(&self) -> sys::socklen_t {
        self.len
    }
}

impl From<SocketAddrV4> for SockAddr {
    fn from(a: SocketAddrV4) -> Self {
        // struct sockaddr_in: family, port (big endian), address, padding.
        let mut s = SockAddr { storage: Storage([0; 128]), len: 16 };
        s.storage.0[..2].copy_from_slice(&AF_INET.to_ne_bytes());
        s.storage.0[2..4].copy_from_slice(&a.port().to_be_bytes());
        s.storage.0[4..8].copy_from_slice(&a.ip().octets());
        s
    }
}

impl From<SocketAddrV6> for SockAddr {
    fn from(a: SocketAddrV6) -> Self {
        // struct sockaddr_in6: family, port, flow info (both big endian), address, scope id.
        let mut s = SockAddr { storage: Storage([0; 128]), len: 28 };
        s.storage.0[..2].copy_from_slice(&AF_INET6.to_ne_bytes());
        s.storage.0[2..4].copy_from_slice(&a.port().to_be_bytes());
        s.storage.0[4..8].copy_from_slice(&a.flowinfo().to_be_bytes());
        s.storage.0[8..24].copy_from_slice(&a.ip().octets());
        s.storage.0[24..28].copy_from_slice(&a.scope_id().to_ne_bytes());
        s
    }
}

impl From<SocketAddr> for SockAddr {
    fn from(a: SocketAddr) -> Self {
        match a {
            SocketAddr::V4(a) => a.into(),
            SocketAddr::V6(a) => a.into(),
        }
    }
}

impl fmt::Debug for SockAddr {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("SockAddr").field("family", &self.family()).field("len", &self.len).finish()
    }
}
