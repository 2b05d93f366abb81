//! The raw C API of `libnbd.so.0`, as `libnbd.h` declares it: every function, the closure
//! structs and the constants.  Everything here is `unsafe` to use; the rest of the crate is the
//! safe layer over it.  See the man page of each function, `nbd_NAME(3)`.
#![allow(non_camel_case_types, missing_docs, unused_imports)]

use std::ffi::{c_char, c_int, c_uint, c_void};
use std::marker::{PhantomData, PhantomPinned};

/// The opaque C handle, `struct nbd_handle`.
#[repr(C)]
pub struct nbd_handle {
    _private: [u8; 0],
    _marker: PhantomData<(*mut u8, PhantomPinned)>,
}

/// `struct sockaddr`, the head every socket address starts with.
#[repr(C)]
pub struct sockaddr {
    pub sa_family: u16,
    pub sa_data: [c_char; 14],
}

/// `nbd_extent`, the element of an `nbd_extent64_callback`'s array.
pub type nbd_extent = crate::NbdExtent;

/// `socklen_t`.
pub type socklen_t = u32;

extern "C" {
    /// The C library's `free`, for the strings `nbd_get_*` calls return.
    pub fn free(ptr: *mut c_void);
}

include!(concat!(env!("NBDPP_RUST_GENERATED"), "/sys.rs"));
