// callback.rs: boxing closures for the C library, the panic relay, and the conversions the
// generated code uses for arguments and results.
use std::any::Any;
use std::borrow::Cow;
use std::cell::{Cell, RefCell};
use std::ffi::{c_char, c_int, c_void, CStr, CString, OsStr};
use std::fmt;
use std::os::unix::ffi::OsStrExt;
use std::panic::{self, AssertUnwindSafe};
use std::sync::{Mutex, PoisonError};

use crate::buffer::Lease;
use crate::error::{Error, Result, ECANCELED};
use crate::sys;

type Payload = Box<dyn Any + Send + 'static>;

// A panic must not unwind through the C library's frames, so a trampoline catches it, makes the
// callback fail and parks the payload here; the method that made the C call resumes it once the
// call has returned.  The library runs callbacks only on a thread that is inside one of its calls
// (completions while polling, debug messages, the writer), so a thread-local slot reaches the
// right method.  Scopes nest: a callback that uses another handle gets a slot of its own.
thread_local! {
    static PENDING: RefCell<Option<Payload>> = const { RefCell::new(None) };
    static DEPTH: Cell<u32> = const { Cell::new(0) };
}

/// Brackets one C call of a generated method.
pub struct CallScope {
    outer: Option<Payload>,
}

impl CallScope {
    /// Starts the bracket, before the C call.
    pub fn enter() -> Self {
        DEPTH.with(|d| d.set(d.get() + 1));
        CallScope { outer: PENDING.with(|p| p.borrow_mut().take()) }
    }

    /// Resumes the first panic a callback raised during the call.  It wins over the C call's own
    /// result: the call may have failed because of it, or succeeded (and its effects stand).
    pub fn finish(self) {
        if let Some(payload) = self.restore() {
            panic::resume_unwind(payload);
        }
    }

    /// Drops a callback's panic: for Drop, which must not panic.
    pub(crate) fn discard(self) {
        drop(self.restore());
    }

    fn restore(self) -> Option<Payload> {
        DEPTH.with(|d| d.set(d.get() - 1));
        PENDING.with(|p| p.replace(self.outer))
    }
}

fn keep_panic(payload: Payload) {
    // Outside any call of this binding (a callback on a thread of the C library's own) there is
    // nowhere to resume it; the panic hook has printed it already.
    if DEPTH.with(Cell::get) == 0 {
        return;
    }
    // Later panics of the same call are dropped: the first is usually the cause.
    PENDING.with(|p| {
        let mut p = p.borrow_mut();
        if p.is_none() {
            *p = Some(payload);
        }
    });
}

/// The heap box behind a closure's `user_data`: the callable (none for a closure with only
/// `.free`) and the lease on the command's buffer, if any.  F is `dyn FnMut(...) + Send`.
pub(crate) struct ClosureBox<F: ?Sized> {
    inner: Mutex<Inner<F>>,
}

struct Inner<F: ?Sized> {
    keep: Option<Lease>,
    f: Option<Box<F>>,
}

impl<F: ?Sized> ClosureBox<F> {
    pub(crate) fn into_raw(f: Option<Box<F>>, keep: Option<Lease>) -> *mut c_void {
        let b = Box::new(ClosureBox { inner: Mutex::new(Inner { keep, f }) });
        Box::into_raw(b).cast()
    }
}

/// The `.free` of every closure this crate makes; the C library calls it exactly once.
pub unsafe extern "C" fn free_box<F: ?Sized>(user_data: *mut c_void) {
    // SAFETY: user_data came from ClosureBox::<F>::into_raw, and C frees it once.
    let b = unsafe { Box::from_raw(user_data.cast::<ClosureBox<F>>()) };
    if let Err(payload) = panic::catch_unwind(AssertUnwindSafe(move || drop(b))) {
        keep_panic(payload);
    }
}

/// The body of every trampoline: runs `call` on the boxed callable, catching a panic.  `error`
/// is the callback's `int *error` argument, or null.
///
/// # Safety
/// user_data must come from `ClosureBox::<F>::into_raw` and not be freed yet.
pub unsafe fn invoke<F: ?Sized>(
    user_data: *mut c_void,
    error: *mut c_int,
    call: impl FnOnce(&mut F) -> i32,
) -> c_int {
    // SAFETY: see above; the box is only shared, and the callable sits behind a mutex.
    let b = unsafe { &*user_data.cast::<ClosureBox<F>>() };
    let result = panic::catch_unwind(AssertUnwindSafe(|| {
        let mut inner = b.inner.lock().unwrap_or_else(PoisonError::into_inner);
        // Only the completion closure keeps a lease, and the library calls it once, after its
        // last access to the command's buffer: the buffer is the callback's to use.
        drop(inner.keep.take());
        match inner.f.as_mut() {
            Some(f) => call(f),
            None => 0,
        }
    }));
    match result {
        Ok(r) => r,
        Err(payload) => {
            keep_panic(payload);
            // The client's own code abandoned the operation: ECANCELED cannot be mistaken for an
            // errno the server sent.  Callbacks without an error argument (the writer) report
            // through errno.
            // SAFETY: error is the library's pointer to a live int, or null.
            match unsafe { error.as_mut() } {
                Some(e) if *e == 0 => *e = ECANCELED,
                Some(_) => {}
                None => set_errno(ECANCELED),
            }
            -1
        }
    }
}

// ---- Callback arguments.

/// A C string argument; not UTF-8 is replaced, NULL is "".
pub(crate) unsafe fn str_arg<'a>(p: *const c_char) -> Cow<'a, str> {
    // SAFETY: as for cstr_bytes_arg.
    String::from_utf8_lossy(unsafe { cstr_bytes_arg(p) })
}

/// A C string argument as its bytes (without the NUL); NULL is empty.
pub unsafe fn cstr_bytes_arg<'a>(p: *const c_char) -> &'a [u8] {
    if p.is_null() {
        return &[];
    }
    // SAFETY: the library passes a NUL-terminated string valid during the callback.
    unsafe { CStr::from_ptr(p) }.to_bytes()
}

/// The callback's `int *error` argument, or a slot of the trampoline's when it is NULL.
pub unsafe fn int_arg(p: *mut c_int, fallback: &mut i32) -> &mut i32 {
    // SAFETY: the library passes a pointer to an int valid during the callback, or null.
    match unsafe { p.as_mut() } {
        Some(r) => r,
        None => fallback,
    }
}

/// A buffer argument and its length.
pub unsafe fn bytes_arg<'a>(p: *const c_void, len: usize) -> &'a [u8] {
    if p.is_null() || len == 0 {
        return &[];
    }
    // SAFETY: the library passes len readable bytes valid during the callback.
    unsafe { std::slice::from_raw_parts(p.cast::<u8>(), len) }
}

/// A `uint32_t` array argument and its length.
pub unsafe fn u32s_arg<'a>(p: *mut u32, len: usize) -> &'a [u32] {
    if p.is_null() || len == 0 {
        return &[];
    }
    // SAFETY: the library passes len uint32_t valid during the callback.
    unsafe { std::slice::from_raw_parts(p, len) }
}

/// An `nbd_extent` array argument and its length.
pub unsafe fn extents_arg<'a>(p: *mut crate::NbdExtent, len: usize) -> &'a [crate::NbdExtent] {
    if p.is_null() || len == 0 {
        return &[];
    }
    // SAFETY: the library passes len nbd_extent structs valid during the callback.
    unsafe { std::slice::from_raw_parts(p, len) }
}

// ---- Call arguments and results.

/// A NUL-terminated copy of a string argument; an embedded NUL is EINVAL, as the C library would
/// never see the rest.
pub(crate) fn c_string<S: AsRef<OsStr> + ?Sized>(s: &S, call: &str, arg: &str) -> Result<CString> {
    CString::new(s.as_ref().as_bytes())
        .map_err(|_| Error::invalid_argument(call, arg, "contains a NUL byte"))
}

/// A NULL-terminated `char **` (argv) that owns its strings.
pub struct CStringList {
    _strings: Vec<CString>,
    ptrs: Vec<*mut c_char>,
}

impl CStringList {
    pub(crate) fn new<S: AsRef<OsStr>>(items: &[S], call: &str, arg: &str) -> Result<Self> {
        let strings =
            items.iter().map(|s| c_string(s, call, arg)).collect::<Result<Vec<CString>>>()?;
        Ok(CStringList::from_strings(strings))
    }

    /// The list of these strings.
    pub fn from_strings(strings: Vec<CString>) -> Self {
        let mut ptrs: Vec<*mut c_char> = strings.iter().map(|s| s.as_ptr().cast_mut()).collect();
        ptrs.push(std::ptr::null_mut());
        CStringList { _strings: strings, ptrs }
    }

    /// The `char **` for the C call, valid as long as `self`.
    pub fn as_mut_ptr(&mut self) -> *mut *mut c_char {
        self.ptrs.as_mut_ptr()
    }
}

/// Copies a string the library keeps (non-null).
pub(crate) unsafe fn copy_c_string(p: *const c_char) -> String {
    // SAFETY: the library returns a NUL-terminated string.
    unsafe { CStr::from_ptr(p) }.to_string_lossy().into_owned()
}

/// Copies and frees a string the library allocated for the caller (non-null).
pub(crate) unsafe fn take_c_string(p: *mut c_char) -> String {
    // SAFETY: as for take_c_bytes.
    match String::from_utf8(unsafe { take_c_bytes(p) }) {
        Ok(s) => s,
        Err(e) => String::from_utf8_lossy(e.as_bytes()).into_owned(),
    }
}

/// Copies and frees a string the library allocated for the caller (non-null), as bytes.
pub unsafe fn take_c_bytes(p: *mut c_char) -> Vec<u8> {
    // SAFETY: the library returns a NUL-terminated string allocated with malloc, which the
    // caller owns.
    unsafe {
        let bytes = CStr::from_ptr(p).to_bytes().to_vec();
        sys::free(p.cast());
        bytes
    }
}

/// Debug output of a flag set: `CmdFlags(FUA | DF | 0x100)`.
pub(crate) fn fmt_flags(
    f: &mut fmt::Formatter<'_>,
    type_name: &str,
    bits: u32,
    named: &[(&str, u32)],
) -> fmt::Result {
    write!(f, "{type_name}(")?;
    let mut rest = bits;
    let mut first = true;
    for &(name, bit) in named {
        if bits & bit != 0 {
            f.write_str(if first { "" } else { " | " })?;
            f.write_str(name)?;
            rest &= !bit;
            first = false;
        }
    }
    if rest != 0 {
        write!(f, "{}{rest:#x}", if first { "" } else { " | " })?;
    } else if first {
        f.write_str("empty")?;
    }
    f.write_str(")")
}

extern "C" {
    fn __errno_location() -> *mut c_int;
}

/// Sets the calling thread's `errno`: a [`crate::WriterCallback`] that returns -1 must set it
/// first, as the C contract asks.
pub fn set_errno(errno: i32) {
    // SAFETY: __errno_location returns the calling thread's errno (glibc and musl).
    unsafe { *__errno_location() = errno };
}
