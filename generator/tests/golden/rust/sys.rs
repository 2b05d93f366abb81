// sys.rs: the raw layer of the nbd crate, libnbd.h spelled in Rust (included by src/sys.rs).
// GENERATED from api.yaml by generator/generate.py: DO NOT EDIT.
//
// Every function, closure struct and constant of the C API, with C types.  Nothing here checks
// anything: the safe layer (api.rs, src/) is what upholds the C contract.

// ---- Closure structs: {callback, user_data, free}, the C library calls free exactly once.

/// C: `nbd_completion_callback`.
#[repr(C)]
pub struct nbd_completion_callback {
    pub callback: Option<unsafe extern "C" fn(*mut c_void, *mut c_int) -> c_int>,
    pub user_data: *mut c_void,
    pub free: Option<unsafe extern "C" fn(*mut c_void)>,
}

/// C: `nbd_chunk_callback`.
#[repr(C)]
pub struct nbd_chunk_callback {
    pub callback: Option<
        unsafe extern "C" fn(*mut c_void, *const c_void, usize, u64, c_uint, *mut c_int) -> c_int,
    >,
    pub user_data: *mut c_void,
    pub free: Option<unsafe extern "C" fn(*mut c_void)>,
}

/// C: `nbd_debug_callback`.
#[repr(C)]
pub struct nbd_debug_callback {
    pub callback: Option<unsafe extern "C" fn(*mut c_void, *const c_char, *const c_char) -> c_int>,
    pub user_data: *mut c_void,
    pub free: Option<unsafe extern "C" fn(*mut c_void)>,
}

/// C: `nbd_extent_callback`.
#[repr(C)]
pub struct nbd_extent_callback {
    pub callback: Option<
        unsafe extern "C" fn(
            *mut c_void,
            *const c_char,
            u64,
            *mut u32,
            usize,
            *mut c_int,
        ) -> c_int,
    >,
    pub user_data: *mut c_void,
    pub free: Option<unsafe extern "C" fn(*mut c_void)>,
}

/// C: `nbd_writer_callback`.
#[repr(C)]
pub struct nbd_writer_callback {
    pub callback: Option<unsafe extern "C" fn(*mut c_void, *const c_void, usize) -> c_int>,
    pub user_data: *mut c_void,
    pub free: Option<unsafe extern "C" fn(*mut c_void)>,
}

/// C: `nbd_extent64_callback`.
#[repr(C)]
pub struct nbd_extent64_callback {
    pub callback: Option<
        unsafe extern "C" fn(
            *mut c_void,
            *const c_char,
            u64,
            *mut crate::NbdExtent,
            usize,
            *mut c_int,
        ) -> c_int,
    >,
    pub user_data: *mut c_void,
    pub free: Option<unsafe extern "C" fn(*mut c_void)>,
}

// ---- Constants.

pub const LIBNBD_MODE_IDLE: c_int = 0;
pub const LIBNBD_MODE_BUSY: c_int = 1;
pub const LIBNBD_CMD_FLAG_FUA: u32 = 0x1;
pub const LIBNBD_CMD_FLAG_DF: u32 = 0x4;
pub const LIBNBD_CMD_FLAG_MASK: u32 = 0x5;
pub const LIBNBD_STRICT_COMMANDS: u32 = 0x1;
pub const LIBNBD_STRICT_BOUNDS: u32 = 0x4;
pub const LIBNBD_STRICT_MASK: u32 = 0x5;
pub const LIBNBD_READ_DATA: c_uint = 1;
pub const LIBNBD_READ_HOLE: c_uint = 2;
pub const LIBNBD_NAMESPACE_BASE: &str = "base:";
pub const LIBNBD_CONTEXT_BASE_ALLOCATION: &str = "base:allocation";
pub const LIBNBD_CONTEXT_BASE_DIRTY_BITMAP: &str = "base:dirty-bitmap:";
pub const LIBNBD_STATE_HOLE: c_uint = 1;

// ---- Functions.

extern "C" {
    /// `nbd_close(3)`: close a handle.
    pub fn nbd_close(h: *mut nbd_handle);

    /// `nbd_create(3)`: create a handle.
    pub fn nbd_create() -> *mut nbd_handle;

    /// `nbd_set_mode(3)`: choose the mode.
    pub fn nbd_set_mode(h: *mut nbd_handle, mode: c_int) -> c_int;

    /// `nbd_get_mode(3)`: read the mode.
    pub fn nbd_get_mode(h: *mut nbd_handle) -> c_int;

    /// `nbd_get_errno(3)`: the errno of the last failed call.
    pub fn nbd_get_errno() -> c_int;

    /// `nbd_get_version(3)`: the library version.
    pub fn nbd_get_version(h: *mut nbd_handle) -> *const c_char;

    /// `nbd_pread(3)`: read data.
    pub fn nbd_pread(
        h: *mut nbd_handle,
        buf: *mut c_void,
        count: usize,
        offset: u64,
        flags: u32,
    ) -> c_int;

    /// `nbd_aio_pread(3)`: start reading data.
    pub fn nbd_aio_pread(
        h: *mut nbd_handle,
        buf: *mut c_void,
        count: usize,
        offset: u64,
        chunk_callback: nbd_chunk_callback,
        completion_callback: nbd_completion_callback,
        flags: u32,
    ) -> i64;

    /// `nbd_set_debug_callback(3)`: set the debug callback.
    pub fn nbd_set_debug_callback(h: *mut nbd_handle, debug_callback: nbd_debug_callback) -> c_int;

    /// `nbd_block_status_64(3)`: describe a range.
    pub fn nbd_block_status_64(
        h: *mut nbd_handle,
        count: u64,
        offset: u64,
        contexts: *mut *mut c_char,
        extent64_callback: nbd_extent64_callback,
    ) -> c_int;

    /// `nbd_get_name(3)`: get the handle name.
    pub fn nbd_get_name(h: *mut nbd_handle) -> *mut c_char;

    /// `nbd_stats_bytes_sent(3)`: count bytes sent.
    pub fn nbd_stats_bytes_sent(h: *mut nbd_handle) -> u64;

    /// `nbd_connect_vsock(3)`: connect over AF_VSOCK.
    pub fn nbd_connect_vsock(h: *mut nbd_handle, cid: u32, port: u32) -> c_int;

    /// `nbd_set_debug(3)`: turn debug messages on or off.
    pub fn nbd_set_debug(h: *mut nbd_handle, debug: bool) -> c_int;

    /// `nbd_get_debug(3)`: whether debug messages are on.
    pub fn nbd_get_debug(h: *mut nbd_handle) -> c_int;

    /// `nbd_set_handle_name(3)`: name the handle.
    pub fn nbd_set_handle_name(h: *mut nbd_handle, handle_name: *const c_char) -> c_int;

    /// `nbd_set_strict_mode(3)`: choose the client-side checks.
    pub fn nbd_set_strict_mode(h: *mut nbd_handle, flags: u32) -> c_int;

    /// `nbd_get_strict_mode(3)`: the client-side checks in force.
    pub fn nbd_get_strict_mode(h: *mut nbd_handle) -> u32;

    /// `nbd_set_private_data(3)`: keep a value in the handle.
    pub fn nbd_set_private_data(h: *mut nbd_handle, private_data: usize) -> usize;

    /// `nbd_connect_unix(3)`: connect over a Unix domain socket.
    pub fn nbd_connect_unix(h: *mut nbd_handle, unixsocket: *const c_char) -> c_int;

    /// `nbd_connect_socket(3)`: connect over a connected socket.
    pub fn nbd_connect_socket(h: *mut nbd_handle, sock: c_int) -> c_int;

    /// `nbd_aio_connect(3)`: start connecting to a socket address.
    pub fn nbd_aio_connect(h: *mut nbd_handle, addr: *const sockaddr, addrlen: socklen_t) -> c_int;

    /// `nbd_get_protocol(3)`: the protocol the server speaks.
    pub fn nbd_get_protocol(h: *mut nbd_handle) -> *const c_char;

    /// `nbd_get_size(3)`: the size of the export.
    pub fn nbd_get_size(h: *mut nbd_handle) -> i64;

    /// `nbd_get_nr_meta_contexts(3)`: count the metadata contexts.
    pub fn nbd_get_nr_meta_contexts(h: *mut nbd_handle) -> isize;

    /// `nbd_get_meta_context(3)`: a metadata context by index.
    pub fn nbd_get_meta_context(h: *mut nbd_handle, i: usize) -> *mut c_char;

    /// `nbd_pwrite(3)`: write data.
    pub fn nbd_pwrite(
        h: *mut nbd_handle,
        buf: *const c_void,
        count: usize,
        offset: u64,
        flags: u32,
    ) -> c_int;

    /// `nbd_aio_pwrite(3)`: start writing data.
    pub fn nbd_aio_pwrite(
        h: *mut nbd_handle,
        buf: *const c_void,
        count: usize,
        offset: u64,
        completion_callback: nbd_completion_callback,
        flags: u32,
    ) -> i64;

    /// `nbd_poll(3)`: wait for the handle.
    pub fn nbd_poll(h: *mut nbd_handle, timeout: c_int) -> c_int;

    /// `nbd_aio_get_fd(3)`: the socket of the handle.
    pub fn nbd_aio_get_fd(h: *mut nbd_handle) -> c_int;

    /// `nbd_aio_get_direction(3)`: what the handle waits for.
    pub fn nbd_aio_get_direction(h: *mut nbd_handle) -> c_uint;

    /// `nbd_set_concurrent_writer(3)`: send outgoing data through an application thread.
    pub fn nbd_set_concurrent_writer(h: *mut nbd_handle, writer: nbd_writer_callback) -> c_int;

    /// `nbd_concurrent_writer_error(3)`: report a send failure from the concurrent writer.
    pub fn nbd_concurrent_writer_error(h: *mut nbd_handle, err: c_int) -> c_int;
}
