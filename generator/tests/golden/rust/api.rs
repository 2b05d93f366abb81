// api.rs: the safe layer of the nbd crate, one item per enum, flag set, constant, closure kind and
// call of api.yaml (included by src/lib.rs).
// GENERATED from api.yaml by generator/generate.py: DO NOT EDIT.
//
// Each method converts its arguments (strings, leases on AioBuffers, closures last, since from
// then on the C library owns them), makes the C call inside a CallScope (which hands a callback's
// panic back to this thread) and turns a failure into an Error.

use crate::buffer::Lease;
#[allow(unused_imports)]
use crate::callback::{c_string, free_box, invoke, CStringList, CallScope, ClosureBox};

/// Values of the `LIBNBD_MODE_*` constants.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
#[repr(i32)]
pub enum Mode {
    /// do nothing
    ///
    /// C: `LIBNBD_MODE_IDLE`.
    Idle = 0,
    /// do something
    ///
    /// C: `LIBNBD_MODE_BUSY`.
    Busy = 1,
}

impl Mode {
    /// Every value, in the order of the C constants.
    pub const ALL: [Mode; 2] = [
        Mode::Idle,
        Mode::Busy,
    ];

    /// The C value.
    pub const fn to_c(self) -> i32 {
        self as i32
    }

    /// The value with this C number, if there is one.
    pub const fn from_c_value(value: i32) -> Option<Self> {
        match value {
            0 => Some(Mode::Idle),
            1 => Some(Mode::Busy),
            _ => None,
        }
    }

    #[allow(dead_code)]
    pub(crate) fn from_c(value: c_int, call: &str) -> Result<Self> {
        Self::from_c_value(value).ok_or_else(|| Error::unknown_value(call, value))
    }
}

/// A set of `LIBNBD_CMD_FLAG_*` flags.
///
/// Bits the library does not know are kept as they are; [`Self::all`] is `LIBNBD_CMD_FLAG_MASK`.
#[derive(Clone, Copy, PartialEq, Eq, Hash, Default)]
pub struct CmdFlags(u32);

impl CmdFlags {
    /// force unit access
    ///
    /// C: `LIBNBD_CMD_FLAG_FUA`.
    pub const FUA: Self = Self(0x1);
    /// do not fragment
    ///
    /// C: `LIBNBD_CMD_FLAG_DF`.
    pub const DF: Self = Self(0x4);
    const NAMED: [(&'static str, u32); 2] = [
        ("FUA", 0x1),
        ("DF", 0x4),
    ];

    /// No flag.
    pub const fn empty() -> Self {
        Self(0)
    }

    /// Every flag the library knows (C: `LIBNBD_CMD_FLAG_MASK`).
    pub const fn all() -> Self {
        Self(0x5)
    }

    /// The C value.
    pub const fn bits(self) -> u32 {
        self.0
    }

    /// The set with these bits, or `None` if one of them is not a known flag.
    pub const fn from_bits(bits: u32) -> Option<Self> {
        if bits & !Self::all().0 == 0 {
            Some(Self(bits))
        } else {
            None
        }
    }

    /// The set with these bits, unknown ones dropped.
    pub const fn from_bits_truncate(bits: u32) -> Self {
        Self(bits & Self::all().0)
    }

    /// The set with exactly these bits, unknown ones kept (they reach the C library as they are).
    pub const fn from_bits_retain(bits: u32) -> Self {
        Self(bits)
    }

    /// Whether no bit is set.
    pub const fn is_empty(self) -> bool {
        self.0 == 0
    }

    /// Whether every known flag is set.
    pub const fn is_all(self) -> bool {
        self.0 & Self::all().0 == Self::all().0
    }

    /// Whether every bit of `other` is set in `self`.
    pub const fn contains(self, other: Self) -> bool {
        self.0 & other.0 == other.0
    }

    /// Whether `self` and `other` have a bit in common.
    pub const fn intersects(self, other: Self) -> bool {
        self.0 & other.0 != 0
    }

    /// The bits of either.
    pub const fn union(self, other: Self) -> Self {
        Self(self.0 | other.0)
    }

    /// The bits of both.
    pub const fn intersection(self, other: Self) -> Self {
        Self(self.0 & other.0)
    }

    /// The bits of `self` that are not in `other`.
    pub const fn difference(self, other: Self) -> Self {
        Self(self.0 & !other.0)
    }

    /// Sets the bits of `other`.
    pub fn insert(&mut self, other: Self) {
        self.0 |= other.0;
    }

    /// Clears the bits of `other`.
    pub fn remove(&mut self, other: Self) {
        self.0 &= !other.0;
    }

    /// Flips the bits of `other`.
    pub fn toggle(&mut self, other: Self) {
        self.0 ^= other.0;
    }

    /// Sets (`value` true) or clears the bits of `other`.
    pub fn set(&mut self, other: Self, value: bool) {
        if value {
            self.insert(other);
        } else {
            self.remove(other);
        }
    }

    /// The bits set in exactly one of `self` and `other`.
    pub const fn symmetric_difference(self, other: Self) -> Self {
        Self(self.0 ^ other.0)
    }

    /// The known flags not in `self` (the same as `!self`).
    pub const fn complement(self) -> Self {
        Self(!self.0 & Self::all().0)
    }

    /// The flag with this name (`"FUA"`), if there is one.
    pub fn from_name(name: &str) -> Option<Self> {
        Self::NAMED.iter().find(|(n, _)| *n == name).map(|&(_, bits)| Self(bits))
    }

    /// The known flags set in `self`, each with its name.
    pub fn iter_names(&self) -> impl Iterator<Item = (&'static str, Self)> {
        let bits = self.0;
        Self::NAMED.iter().filter(move |(_, b)| bits & b != 0).map(|&(n, b)| (n, Self(b)))
    }

    /// The known flags set in `self`, then the unknown bits together if there are any.
    pub fn iter(&self) -> impl Iterator<Item = Self> {
        let unknown = self.0 & !Self::all().0;
        self.iter_names().map(|(_, f)| f).chain((unknown != 0).then_some(Self(unknown)))
    }
}

/// [`CmdFlags`] under the name libnbd's own crate gives it.
pub type CmdFlag = CmdFlags;

impl std::ops::BitOr for CmdFlags {
    type Output = Self;
    fn bitor(self, other: Self) -> Self {
        self.union(other)
    }
}

impl std::ops::BitOrAssign for CmdFlags {
    fn bitor_assign(&mut self, other: Self) {
        self.insert(other);
    }
}

impl std::ops::BitAnd for CmdFlags {
    type Output = Self;
    fn bitand(self, other: Self) -> Self {
        self.intersection(other)
    }
}

impl std::ops::BitAndAssign for CmdFlags {
    fn bitand_assign(&mut self, other: Self) {
        self.0 &= other.0;
    }
}

impl std::ops::BitXor for CmdFlags {
    type Output = Self;
    fn bitxor(self, other: Self) -> Self {
        Self(self.0 ^ other.0)
    }
}

impl std::ops::BitXorAssign for CmdFlags {
    fn bitxor_assign(&mut self, other: Self) {
        self.toggle(other);
    }
}

impl std::ops::Sub for CmdFlags {
    type Output = Self;
    fn sub(self, other: Self) -> Self {
        self.difference(other)
    }
}

impl std::ops::SubAssign for CmdFlags {
    fn sub_assign(&mut self, other: Self) {
        self.remove(other);
    }
}

impl std::ops::Not for CmdFlags {
    type Output = Self;
    /// The known flags not in `self`.
    fn not(self) -> Self {
        Self(!self.0 & Self::all().0)
    }
}

impl FromIterator<CmdFlags> for CmdFlags {
    fn from_iter<I: IntoIterator<Item = Self>>(iter: I) -> Self {
        iter.into_iter().fold(Self::empty(), Self::union)
    }
}

impl Extend<CmdFlags> for CmdFlags {
    fn extend<I: IntoIterator<Item = Self>>(&mut self, iter: I) {
        iter.into_iter().for_each(|f| self.insert(f));
    }
}

impl From<CmdFlags> for u32 {
    fn from(flags: CmdFlags) -> u32 {
        flags.0
    }
}

impl std::fmt::Debug for CmdFlags {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        crate::callback::fmt_flags(f, "CmdFlags", self.0, &Self::NAMED)
    }
}

impl std::fmt::Binary for CmdFlags {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        std::fmt::Binary::fmt(&self.0, f)
    }
}

impl std::fmt::Octal for CmdFlags {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        std::fmt::Octal::fmt(&self.0, f)
    }
}

impl std::fmt::LowerHex for CmdFlags {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        std::fmt::LowerHex::fmt(&self.0, f)
    }
}

impl std::fmt::UpperHex for CmdFlags {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        std::fmt::UpperHex::fmt(&self.0, f)
    }
}

/// A set of `LIBNBD_STRICT_*` flags.
///
/// Bits the library does not know are kept as they are; [`Self::all`] is `LIBNBD_STRICT_MASK`.
#[derive(Clone, Copy, PartialEq, Eq, Hash, Default)]
pub struct StrictFlags(u32);

impl StrictFlags {
    /// refuse commands the server did not advertise
    ///
    /// C: `LIBNBD_STRICT_COMMANDS`.
    pub const COMMANDS: Self = Self(0x1);
    /// refuse requests past the end of the export
    ///
    /// C: `LIBNBD_STRICT_BOUNDS`.
    pub const BOUNDS: Self = Self(0x4);
    const NAMED: [(&'static str, u32); 2] = [
        ("COMMANDS", 0x1),
        ("BOUNDS", 0x4),
    ];

    /// No flag.
    pub const fn empty() -> Self {
        Self(0)
    }

    /// Every flag the library knows (C: `LIBNBD_STRICT_MASK`).
    pub const fn all() -> Self {
        Self(0x5)
    }

    /// The C value.
    pub const fn bits(self) -> u32 {
        self.0
    }

    /// The set with these bits, or `None` if one of them is not a known flag.
    pub const fn from_bits(bits: u32) -> Option<Self> {
        if bits & !Self::all().0 == 0 {
            Some(Self(bits))
        } else {
            None
        }
    }

    /// The set with these bits, unknown ones dropped.
    pub const fn from_bits_truncate(bits: u32) -> Self {
        Self(bits & Self::all().0)
    }

    /// The set with exactly these bits, unknown ones kept (they reach the C library as they are).
    pub const fn from_bits_retain(bits: u32) -> Self {
        Self(bits)
    }

    /// Whether no bit is set.
    pub const fn is_empty(self) -> bool {
        self.0 == 0
    }

    /// Whether every known flag is set.
    pub const fn is_all(self) -> bool {
        self.0 & Self::all().0 == Self::all().0
    }

    /// Whether every bit of `other` is set in `self`.
    pub const fn contains(self, other: Self) -> bool {
        self.0 & other.0 == other.0
    }

    /// Whether `self` and `other` have a bit in common.
    pub const fn intersects(self, other: Self) -> bool {
        self.0 & other.0 != 0
    }

    /// The bits of either.
    pub const fn union(self, other: Self) -> Self {
        Self(self.0 | other.0)
    }

    /// The bits of both.
    pub const fn intersection(self, other: Self) -> Self {
        Self(self.0 & other.0)
    }

    /// The bits of `self` that are not in `other`.
    pub const fn difference(self, other: Self) -> Self {
        Self(self.0 & !other.0)
    }

    /// Sets the bits of `other`.
    pub fn insert(&mut self, other: Self) {
        self.0 |= other.0;
    }

    /// Clears the bits of `other`.
    pub fn remove(&mut self, other: Self) {
        self.0 &= !other.0;
    }

    /// Flips the bits of `other`.
    pub fn toggle(&mut self, other: Self) {
        self.0 ^= other.0;
    }

    /// Sets (`value` true) or clears the bits of `other`.
    pub fn set(&mut self, other: Self, value: bool) {
        if value {
            self.insert(other);
        } else {
            self.remove(other);
        }
    }

    /// The bits set in exactly one of `self` and `other`.
    pub const fn symmetric_difference(self, other: Self) -> Self {
        Self(self.0 ^ other.0)
    }

    /// The known flags not in `self` (the same as `!self`).
    pub const fn complement(self) -> Self {
        Self(!self.0 & Self::all().0)
    }

    /// The flag with this name (`"COMMANDS"`), if there is one.
    pub fn from_name(name: &str) -> Option<Self> {
        Self::NAMED.iter().find(|(n, _)| *n == name).map(|&(_, bits)| Self(bits))
    }

    /// The known flags set in `self`, each with its name.
    pub fn iter_names(&self) -> impl Iterator<Item = (&'static str, Self)> {
        let bits = self.0;
        Self::NAMED.iter().filter(move |(_, b)| bits & b != 0).map(|&(n, b)| (n, Self(b)))
    }

    /// The known flags set in `self`, then the unknown bits together if there are any.
    pub fn iter(&self) -> impl Iterator<Item = Self> {
        let unknown = self.0 & !Self::all().0;
        self.iter_names().map(|(_, f)| f).chain((unknown != 0).then_some(Self(unknown)))
    }
}

/// [`StrictFlags`] under the name libnbd's own crate gives it.
pub type Strict = StrictFlags;

impl std::ops::BitOr for StrictFlags {
    type Output = Self;
    fn bitor(self, other: Self) -> Self {
        self.union(other)
    }
}

impl std::ops::BitOrAssign for StrictFlags {
    fn bitor_assign(&mut self, other: Self) {
        self.insert(other);
    }
}

impl std::ops::BitAnd for StrictFlags {
    type Output = Self;
    fn bitand(self, other: Self) -> Self {
        self.intersection(other)
    }
}

impl std::ops::BitAndAssign for StrictFlags {
    fn bitand_assign(&mut self, other: Self) {
        self.0 &= other.0;
    }
}

impl std::ops::BitXor for StrictFlags {
    type Output = Self;
    fn bitxor(self, other: Self) -> Self {
        Self(self.0 ^ other.0)
    }
}

impl std::ops::BitXorAssign for StrictFlags {
    fn bitxor_assign(&mut self, other: Self) {
        self.toggle(other);
    }
}

impl std::ops::Sub for StrictFlags {
    type Output = Self;
    fn sub(self, other: Self) -> Self {
        self.difference(other)
    }
}

impl std::ops::SubAssign for StrictFlags {
    fn sub_assign(&mut self, other: Self) {
        self.remove(other);
    }
}

impl std::ops::Not for StrictFlags {
    type Output = Self;
    /// The known flags not in `self`.
    fn not(self) -> Self {
        Self(!self.0 & Self::all().0)
    }
}

impl FromIterator<StrictFlags> for StrictFlags {
    fn from_iter<I: IntoIterator<Item = Self>>(iter: I) -> Self {
        iter.into_iter().fold(Self::empty(), Self::union)
    }
}

impl Extend<StrictFlags> for StrictFlags {
    fn extend<I: IntoIterator<Item = Self>>(&mut self, iter: I) {
        iter.into_iter().for_each(|f| self.insert(f));
    }
}

impl From<StrictFlags> for u32 {
    fn from(flags: StrictFlags) -> u32 {
        flags.0
    }
}

impl std::fmt::Debug for StrictFlags {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        crate::callback::fmt_flags(f, "StrictFlags", self.0, &Self::NAMED)
    }
}

impl std::fmt::Binary for StrictFlags {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        std::fmt::Binary::fmt(&self.0, f)
    }
}

impl std::fmt::Octal for StrictFlags {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        std::fmt::Octal::fmt(&self.0, f)
    }
}

impl std::fmt::LowerHex for StrictFlags {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        std::fmt::LowerHex::fmt(&self.0, f)
    }
}

impl std::fmt::UpperHex for StrictFlags {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        std::fmt::UpperHex::fmt(&self.0, f)
    }
}

/// C: `LIBNBD_READ_DATA`.
pub const READ_DATA: u32 = 1;

/// C: `LIBNBD_READ_HOLE`.
pub const READ_HOLE: u32 = 2;

/// The "base:" metadata context namespace
///
/// C: `LIBNBD_NAMESPACE_BASE`.
pub const NAMESPACE_BASE: &str = "base:";

/// The "base:allocation" metadata context
///
/// C: `LIBNBD_CONTEXT_BASE_ALLOCATION`.
pub const CONTEXT_BASE_ALLOCATION: &str = "base:allocation";

/// The "base:dirty-bitmap:" metadata context
///
/// C: `LIBNBD_CONTEXT_BASE_DIRTY_BITMAP`.
pub const CONTEXT_BASE_DIRTY_BITMAP: &str = "base:dirty-bitmap:";

/// C: `LIBNBD_STATE_HOLE`.
pub const STATE_HOLE: u32 = 1;

type CompletionCallbackFn = dyn FnMut(&mut i32) -> i32 + Send + 'static;

/// A callback of the `nbd_completion_callback` kind.
///
/// A boxed `FnMut(&mut i32) -> i32 + Send`; the C library frees it exactly once.
///
/// C: `nbd_completion_callback`.
pub struct CompletionCallback(Box<CompletionCallbackFn>);

impl CompletionCallback {
    /// Boxes `f`.
    pub fn new(f: impl FnMut(&mut i32) -> i32 + Send + 'static) -> Self {
        Self(Box::new(f))
    }

    // Gives the callable to C; keep rides along until the closure is freed.
    #[allow(dead_code)]
    pub(crate) fn into_c(self, keep: Option<Lease>) -> sys::nbd_completion_callback {
        let user_data = ClosureBox::<CompletionCallbackFn>::into_raw(Some(self.0), keep);
        let free = free_box::<CompletionCallbackFn>;
        sys::nbd_completion_callback {
            callback: Some(completion_trampoline),
            user_data,
            free: Some(free),
        }
    }

    // No callable: the C API's NBD_NULL_*, or a closure with only .free when keep is set.
    #[allow(dead_code)]
    pub(crate) fn into_c_option(
        cb: Option<Self>,
        keep: Option<Lease>,
    ) -> sys::nbd_completion_callback {
        match (cb, keep) {
            (Some(cb), keep) => cb.into_c(keep),
            (None, None) => sys::nbd_completion_callback {
                callback: None,
                user_data: std::ptr::null_mut(),
                free: None,
            },
            (None, keep) => {
                let user_data = ClosureBox::<CompletionCallbackFn>::into_raw(None, keep);
                let free = free_box::<CompletionCallbackFn>;
                sys::nbd_completion_callback { callback: None, user_data, free: Some(free) }
            }
        }
    }
}

impl<F: FnMut(&mut i32) -> i32 + Send + 'static> From<F> for CompletionCallback {
    fn from(f: F) -> Self {
        Self::new(f)
    }
}

impl std::fmt::Debug for CompletionCallback {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("CompletionCallback")
    }
}

unsafe extern "C" fn completion_trampoline(user_data: *mut c_void, error: *mut c_int) -> c_int {
    unsafe {
        invoke::<CompletionCallbackFn>(user_data, error, |f| {
            let mut error_slot = 0;
            let error = crate::callback::int_arg(error, &mut error_slot);
            f(error)
        })
    }
}

type ChunkCallbackFn = dyn FnMut(&[u8], u64, u32, &mut i32) -> i32 + Send + 'static;

/// A callback of the `nbd_chunk_callback` kind.
///
/// A boxed `FnMut(&[u8], u64, u32, &mut i32) -> i32 + Send`; the C library frees it exactly once.
///
/// C: `nbd_chunk_callback`.
pub struct ChunkCallback(Box<ChunkCallbackFn>);

impl ChunkCallback {
    /// Boxes `f`.
    pub fn new(f: impl FnMut(&[u8], u64, u32, &mut i32) -> i32 + Send + 'static) -> Self {
        Self(Box::new(f))
    }

    // Gives the callable to C; keep rides along until the closure is freed.
    #[allow(dead_code)]
    pub(crate) fn into_c(self, keep: Option<Lease>) -> sys::nbd_chunk_callback {
        let user_data = ClosureBox::<ChunkCallbackFn>::into_raw(Some(self.0), keep);
        let free = free_box::<ChunkCallbackFn>;
        sys::nbd_chunk_callback {
            callback: Some(chunk_trampoline),
            user_data,
            free: Some(free),
        }
    }

    // No callable: the C API's NBD_NULL_*, or a closure with only .free when keep is set.
    #[allow(dead_code)]
    pub(crate) fn into_c_option(
        cb: Option<Self>,
        keep: Option<Lease>,
    ) -> sys::nbd_chunk_callback {
        match (cb, keep) {
            (Some(cb), keep) => cb.into_c(keep),
            (None, None) => sys::nbd_chunk_callback {
                callback: None,
                user_data: std::ptr::null_mut(),
                free: None,
            },
            (None, keep) => {
                let user_data = ClosureBox::<ChunkCallbackFn>::into_raw(None, keep);
                let free = free_box::<ChunkCallbackFn>;
                sys::nbd_chunk_callback { callback: None, user_data, free: Some(free) }
            }
        }
    }
}

impl<F: FnMut(&[u8], u64, u32, &mut i32) -> i32 + Send + 'static> From<F> for ChunkCallback {
    fn from(f: F) -> Self {
        Self::new(f)
    }
}

impl std::fmt::Debug for ChunkCallback {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("ChunkCallback")
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
        invoke::<ChunkCallbackFn>(user_data, error, |f| {
            let subbuf = crate::callback::bytes_arg(subbuf, count);
            let mut error_slot = 0;
            let error = crate::callback::int_arg(error, &mut error_slot);
            f(subbuf, offset, status, error)
        })
    }
}

type DebugCallbackFn = dyn FnMut(&str, &str) -> i32 + Send + 'static;

/// A callback of the `nbd_debug_callback` kind.
///
/// A boxed `FnMut(&str, &str) -> i32 + Send`; the C library frees it exactly once.
///
/// C: `nbd_debug_callback`.
pub struct DebugCallback(Box<DebugCallbackFn>);

impl DebugCallback {
    /// Boxes `f`.
    pub fn new(f: impl FnMut(&str, &str) -> i32 + Send + 'static) -> Self {
        Self(Box::new(f))
    }

    // Gives the callable to C; keep rides along until the closure is freed.
    #[allow(dead_code)]
    pub(crate) fn into_c(self, keep: Option<Lease>) -> sys::nbd_debug_callback {
        let user_data = ClosureBox::<DebugCallbackFn>::into_raw(Some(self.0), keep);
        let free = free_box::<DebugCallbackFn>;
        sys::nbd_debug_callback {
            callback: Some(debug_trampoline),
            user_data,
            free: Some(free),
        }
    }

    // No callable: the C API's NBD_NULL_*, or a closure with only .free when keep is set.
    #[allow(dead_code)]
    pub(crate) fn into_c_option(
        cb: Option<Self>,
        keep: Option<Lease>,
    ) -> sys::nbd_debug_callback {
        match (cb, keep) {
            (Some(cb), keep) => cb.into_c(keep),
            (None, None) => sys::nbd_debug_callback {
                callback: None,
                user_data: std::ptr::null_mut(),
                free: None,
            },
            (None, keep) => {
                let user_data = ClosureBox::<DebugCallbackFn>::into_raw(None, keep);
                let free = free_box::<DebugCallbackFn>;
                sys::nbd_debug_callback { callback: None, user_data, free: Some(free) }
            }
        }
    }
}

impl<F: FnMut(&str, &str) -> i32 + Send + 'static> From<F> for DebugCallback {
    fn from(f: F) -> Self {
        Self::new(f)
    }
}

impl std::fmt::Debug for DebugCallback {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("DebugCallback")
    }
}

unsafe extern "C" fn debug_trampoline(
    user_data: *mut c_void,
    context: *const c_char,
    msg: *const c_char,
) -> c_int {
    unsafe {
        invoke::<DebugCallbackFn>(user_data, std::ptr::null_mut(), |f| {
            let context = crate::callback::str_arg(context);
            let msg = crate::callback::str_arg(msg);
            f(&context, &msg)
        })
    }
}

type ExtentCallbackFn = dyn FnMut(&str, u64, &[u32], &mut i32) -> i32 + Send + 'static;

/// A callback of the `nbd_extent_callback` kind.
///
/// A boxed `FnMut(&str, u64, &[u32], &mut i32) -> i32 + Send`; the C library frees it exactly
/// once.
///
/// C: `nbd_extent_callback`.
pub struct ExtentCallback(Box<ExtentCallbackFn>);

impl ExtentCallback {
    /// Boxes `f`.
    pub fn new(f: impl FnMut(&str, u64, &[u32], &mut i32) -> i32 + Send + 'static) -> Self {
        Self(Box::new(f))
    }

    // Gives the callable to C; keep rides along until the closure is freed.
    #[allow(dead_code)]
    pub(crate) fn into_c(self, keep: Option<Lease>) -> sys::nbd_extent_callback {
        let user_data = ClosureBox::<ExtentCallbackFn>::into_raw(Some(self.0), keep);
        let free = free_box::<ExtentCallbackFn>;
        sys::nbd_extent_callback {
            callback: Some(extent_trampoline),
            user_data,
            free: Some(free),
        }
    }

    // No callable: the C API's NBD_NULL_*, or a closure with only .free when keep is set.
    #[allow(dead_code)]
    pub(crate) fn into_c_option(
        cb: Option<Self>,
        keep: Option<Lease>,
    ) -> sys::nbd_extent_callback {
        match (cb, keep) {
            (Some(cb), keep) => cb.into_c(keep),
            (None, None) => sys::nbd_extent_callback {
                callback: None,
                user_data: std::ptr::null_mut(),
                free: None,
            },
            (None, keep) => {
                let user_data = ClosureBox::<ExtentCallbackFn>::into_raw(None, keep);
                let free = free_box::<ExtentCallbackFn>;
                sys::nbd_extent_callback { callback: None, user_data, free: Some(free) }
            }
        }
    }
}

impl<F: FnMut(&str, u64, &[u32], &mut i32) -> i32 + Send + 'static> From<F> for ExtentCallback {
    fn from(f: F) -> Self {
        Self::new(f)
    }
}

impl std::fmt::Debug for ExtentCallback {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("ExtentCallback")
    }
}

unsafe extern "C" fn extent_trampoline(
    user_data: *mut c_void,
    metacontext: *const c_char,
    offset: u64,
    entries: *mut u32,
    nr_entries: usize,
    error: *mut c_int,
) -> c_int {
    unsafe {
        invoke::<ExtentCallbackFn>(user_data, error, |f| {
            let metacontext = crate::callback::str_arg(metacontext);
            let entries = crate::callback::u32s_arg(entries, nr_entries);
            let mut error_slot = 0;
            let error = crate::callback::int_arg(error, &mut error_slot);
            f(&metacontext, offset, entries, error)
        })
    }
}

type WriterCallbackFn = dyn FnMut(&[u8]) -> i32 + Send + 'static;

/// Called for every piece of data the handle sends; queue a copy of buf and return 0.
///
/// A boxed `FnMut(&[u8]) -> i32 + Send`; the C library frees it exactly once.
///
/// C: `nbd_writer_callback`.
pub struct WriterCallback(Box<WriterCallbackFn>);

impl WriterCallback {
    /// Boxes `f`.
    pub fn new(f: impl FnMut(&[u8]) -> i32 + Send + 'static) -> Self {
        Self(Box::new(f))
    }

    // Gives the callable to C; keep rides along until the closure is freed.
    #[allow(dead_code)]
    pub(crate) fn into_c(self, keep: Option<Lease>) -> sys::nbd_writer_callback {
        let user_data = ClosureBox::<WriterCallbackFn>::into_raw(Some(self.0), keep);
        let free = free_box::<WriterCallbackFn>;
        sys::nbd_writer_callback {
            callback: Some(writer_trampoline),
            user_data,
            free: Some(free),
        }
    }

    // No callable: the C API's NBD_NULL_*, or a closure with only .free when keep is set.
    #[allow(dead_code)]
    pub(crate) fn into_c_option(
        cb: Option<Self>,
        keep: Option<Lease>,
    ) -> sys::nbd_writer_callback {
        match (cb, keep) {
            (Some(cb), keep) => cb.into_c(keep),
            (None, None) => sys::nbd_writer_callback {
                callback: None,
                user_data: std::ptr::null_mut(),
                free: None,
            },
            (None, keep) => {
                let user_data = ClosureBox::<WriterCallbackFn>::into_raw(None, keep);
                let free = free_box::<WriterCallbackFn>;
                sys::nbd_writer_callback { callback: None, user_data, free: Some(free) }
            }
        }
    }
}

impl<F: FnMut(&[u8]) -> i32 + Send + 'static> From<F> for WriterCallback {
    fn from(f: F) -> Self {
        Self::new(f)
    }
}

impl std::fmt::Debug for WriterCallback {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("WriterCallback")
    }
}

unsafe extern "C" fn writer_trampoline(
    user_data: *mut c_void,
    buf: *const c_void,
    len: usize,
) -> c_int {
    unsafe {
        invoke::<WriterCallbackFn>(user_data, std::ptr::null_mut(), |f| {
            let buf = crate::callback::bytes_arg(buf, len);
            f(buf)
        })
    }
}

type Extent64CallbackFn = dyn FnMut(&str, u64, &[NbdExtent], &mut i32) -> i32 + Send + 'static;

/// A callback of the `nbd_extent64_callback` kind.
///
/// A boxed `FnMut(&str, u64, &[NbdExtent], &mut i32) -> i32 + Send`; the C library frees it
/// exactly once.
///
/// C: `nbd_extent64_callback`.
pub struct Extent64Callback(Box<Extent64CallbackFn>);

impl Extent64Callback {
    /// Boxes `f`.
    pub fn new(f: impl FnMut(&str, u64, &[NbdExtent], &mut i32) -> i32 + Send + 'static) -> Self {
        Self(Box::new(f))
    }

    // Gives the callable to C; keep rides along until the closure is freed.
    #[allow(dead_code)]
    pub(crate) fn into_c(self, keep: Option<Lease>) -> sys::nbd_extent64_callback {
        let user_data = ClosureBox::<Extent64CallbackFn>::into_raw(Some(self.0), keep);
        let free = free_box::<Extent64CallbackFn>;
        sys::nbd_extent64_callback {
            callback: Some(extent64_trampoline),
            user_data,
            free: Some(free),
        }
    }

    // No callable: the C API's NBD_NULL_*, or a closure with only .free when keep is set.
    #[allow(dead_code)]
    pub(crate) fn into_c_option(
        cb: Option<Self>,
        keep: Option<Lease>,
    ) -> sys::nbd_extent64_callback {
        match (cb, keep) {
            (Some(cb), keep) => cb.into_c(keep),
            (None, None) => sys::nbd_extent64_callback {
                callback: None,
                user_data: std::ptr::null_mut(),
                free: None,
            },
            (None, keep) => {
                let user_data = ClosureBox::<Extent64CallbackFn>::into_raw(None, keep);
                let free = free_box::<Extent64CallbackFn>;
                sys::nbd_extent64_callback { callback: None, user_data, free: Some(free) }
            }
        }
    }
}

impl<F: FnMut(&str, u64, &[NbdExtent], &mut i32) -> i32 + Send + 'static> From<F> for Extent64Callback {
    fn from(f: F) -> Self {
        Self::new(f)
    }
}

impl std::fmt::Debug for Extent64Callback {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Extent64Callback")
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
        invoke::<Extent64CallbackFn>(user_data, error, |f| {
            let metacontext = crate::callback::str_arg(metacontext);
            let entries = crate::callback::extents_arg(entries, nr_entries);
            let mut error_slot = 0;
            let error = crate::callback::int_arg(error, &mut error_slot);
            f(&metacontext, offset, entries, error)
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
        let r = unsafe { sys::nbd_set_mode(self.h, mode as c_int) };
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
        let r = unsafe { sys::nbd_get_mode(self.h) };
        scope.finish();
        Mode::from_c(r, "nbd_get_mode").expect("a known value")
    }

    /// The library version.
    ///
    /// Returns the version of the library.
    ///
    /// C: `nbd_get_version(3)`.
    pub fn get_version(&self) -> String {
        let scope = CallScope::enter();
        let r = unsafe { sys::nbd_get_version(self.h) };
        scope.finish();
        if r.is_null() { String::new() } else { unsafe { crate::callback::copy_c_string(r) } }
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
    pub fn pread(
        &self,
        buf: &mut [u8],
        offset: u64,
        flags: impl Into<Option<CmdFlags>>,
    ) -> Result<()> {
        let scope = CallScope::enter();
        let r = unsafe {
            sys::nbd_pread(
                self.h,
                buf.as_mut_ptr() as *mut c_void,
                buf.len(),
                offset,
                flags.into().unwrap_or_default().bits(),
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
    /// Starts a read; the [`ChunkCallback`] sees each chunk.
    ///
    /// `buf` is leased to the command until it retires (see [`AioBuffer`]): reading or writing it
    /// from Rust before then fails, and the library never touches it afterwards. The completion
    /// callback may already use it.
    ///
    /// The handle must be connected with the server.
    ///
    /// See also [`Handle::pread`].
    ///
    /// C: `nbd_aio_pread(3)`.
    pub fn aio_pread(
        &self,
        buf: &AioBuffer,
        offset: u64,
        chunk_callback: impl FnMut(&[u8], u64, u32, &mut i32) -> i32 + Send + 'static,
        completion_callback: impl Into<Option<CompletionCallback>>,
        flags: impl Into<Option<CmdFlags>>,
    ) -> Result<u64> {
        let buf_lease = buf.lease(true, "nbd_aio_pread", "buf")?;
        let buf_ptr = buf_lease.as_ptr();
        let buf_len = buf_lease.len();
        let chunk_callback = ChunkCallback::new(chunk_callback).into_c(None);
        let completion_callback =
            CompletionCallback::into_c_option(completion_callback.into(), Some(buf_lease));
        let scope = CallScope::enter();
        let r = unsafe {
            sys::nbd_aio_pread(
                self.h,
                buf_ptr as *mut c_void,
                buf_len,
                offset,
                chunk_callback,
                completion_callback,
                flags.into().unwrap_or_default().bits(),
            )
        };
        scope.finish();
        if r == -1 {
            return Err(self.last_error());
        }
        Ok(r as u64)
    }

    /// Set the debug callback.
    ///
    /// Sends debug messages to a callback.
    ///
    /// C: `nbd_set_debug_callback(3)`.
    pub fn set_debug_callback(
        &self,
        debug_callback: impl FnMut(&str, &str) -> i32 + Send + 'static,
    ) -> Result<()> {
        let debug_callback = DebugCallback::new(debug_callback).into_c(None);
        let scope = CallScope::enter();
        let r = unsafe { sys::nbd_set_debug_callback(self.h, debug_callback) };
        scope.finish();
        if r == -1 {
            return Err(self.last_error());
        }
        Ok(())
    }

    /// Describe a range.
    ///
    /// Calls the [`Extent64Callback`] once per context in contexts.
    ///
    /// The handle must be connected with the server.
    ///
    /// C: `nbd_block_status_64(3)`.
    pub fn block_status_64(
        &self,
        count: u64,
        offset: u64,
        contexts: &[impl AsRef<std::ffi::OsStr>],
        extent64_callback: impl FnMut(&str, u64, &[NbdExtent], &mut i32) -> i32 + Send + 'static,
    ) -> Result<()> {
        let mut contexts = CStringList::new(contexts, "nbd_block_status_64", "contexts")?;
        let extent64_callback = Extent64Callback::new(extent64_callback).into_c(None);
        let scope = CallScope::enter();
        let r = unsafe {
            sys::nbd_block_status_64(
                self.h,
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
    pub fn get_name(&self) -> Result<String> {
        let scope = CallScope::enter();
        let r = unsafe { sys::nbd_get_name(self.h) };
        scope.finish();
        if r.is_null() {
            return Err(self.last_error());
        }
        Ok(unsafe { crate::callback::take_c_string(r) })
    }

    /// Count bytes sent.
    ///
    /// Returns how many bytes were sent.
    ///
    /// C: `nbd_stats_bytes_sent(3)`.
    pub fn stats_bytes_sent(&self) -> u64 {
        let scope = CallScope::enter();
        let r = unsafe { sys::nbd_stats_bytes_sent(self.h) };
        scope.finish();
        r
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
        let r = unsafe { sys::nbd_connect_vsock(self.h, cid, port) };
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
        let r = unsafe { sys::nbd_set_debug(self.h, debug) };
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
        let r = unsafe { sys::nbd_get_debug(self.h) };
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
    pub fn set_handle_name(&self, handle_name: &str) -> Result<()> {
        let handle_name = c_string(handle_name, "nbd_set_handle_name", "handle_name")?;
        let scope = CallScope::enter();
        let r = unsafe { sys::nbd_set_handle_name(self.h, handle_name.as_ptr()) };
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
    pub fn set_strict_mode(&self, flags: StrictFlags) -> Result<()> {
        let scope = CallScope::enter();
        let r = unsafe { sys::nbd_set_strict_mode(self.h, flags.bits()) };
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
    pub fn get_strict_mode(&self) -> StrictFlags {
        let scope = CallScope::enter();
        let r = unsafe { sys::nbd_get_strict_mode(self.h) };
        scope.finish();
        StrictFlags::from_bits_retain(r)
    }

    /// Keep a value in the handle.
    ///
    /// Keeps a value of the caller's in the handle and returns the previous one.
    ///
    /// C: `nbd_set_private_data(3)`.
    pub fn set_private_data(&self, private_data: usize) -> usize {
        let scope = CallScope::enter();
        let r = unsafe { sys::nbd_set_private_data(self.h, private_data) };
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
    pub fn connect_unix(&self, unixsocket: impl AsRef<std::path::Path>) -> Result<()> {
        let unixsocket = c_string(unixsocket.as_ref(), "nbd_connect_unix", "unixsocket")?;
        let scope = CallScope::enter();
        let r = unsafe { sys::nbd_connect_unix(self.h, unixsocket.as_ptr()) };
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
    pub fn connect_socket(&self, sock: std::os::fd::OwnedFd) -> Result<()> {
        let sock = self.hand_over(sock);
        let scope = CallScope::enter();
        let r = unsafe { sys::nbd_connect_socket(self.h, sock.raw()) };
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
    pub fn aio_connect(&self, addr: &SockAddr) -> Result<()> {
        let scope = CallScope::enter();
        let r = unsafe { sys::nbd_aio_connect(self.h, addr.as_ptr(), addr.socklen()) };
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
    pub fn get_protocol(&self) -> Result<String> {
        let scope = CallScope::enter();
        let r = unsafe { sys::nbd_get_protocol(self.h) };
        scope.finish();
        if r.is_null() {
            return Err(self.last_error());
        }
        Ok(unsafe { crate::callback::copy_c_string(r) })
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
        let r = unsafe { sys::nbd_get_size(self.h) };
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
        let r = unsafe { sys::nbd_get_nr_meta_contexts(self.h) };
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
    pub fn get_meta_context(&self, i: usize) -> Result<String> {
        let scope = CallScope::enter();
        let r = unsafe { sys::nbd_get_meta_context(self.h, i) };
        scope.finish();
        if r.is_null() {
            return Err(self.last_error());
        }
        Ok(unsafe { crate::callback::take_c_string(r) })
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
    pub fn pwrite(
        &self,
        buf: &[u8],
        offset: u64,
        flags: impl Into<Option<CmdFlags>>,
    ) -> Result<()> {
        let scope = CallScope::enter();
        let r = unsafe {
            sys::nbd_pwrite(
                self.h,
                buf.as_ptr() as *const c_void,
                buf.len(),
                offset,
                flags.into().unwrap_or_default().bits(),
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
    /// `buf` is leased to the command until it retires (see [`AioBuffer`]): reading or writing it
    /// from Rust before then fails, and the library never touches it afterwards. The completion
    /// callback may already use it.
    ///
    /// The handle must be connected with the server.
    ///
    /// See also [`Handle::pwrite`].
    ///
    /// C: `nbd_aio_pwrite(3)`.
    pub fn aio_pwrite(
        &self,
        buf: &AioBuffer,
        offset: u64,
        completion_callback: impl Into<Option<CompletionCallback>>,
        flags: impl Into<Option<CmdFlags>>,
    ) -> Result<u64> {
        let buf_lease = buf.lease(false, "nbd_aio_pwrite", "buf")?;
        let buf_ptr = buf_lease.as_ptr();
        let buf_len = buf_lease.len();
        let completion_callback =
            CompletionCallback::into_c_option(completion_callback.into(), Some(buf_lease));
        let scope = CallScope::enter();
        let r = unsafe {
            sys::nbd_aio_pwrite(
                self.h,
                buf_ptr as *const c_void,
                buf_len,
                offset,
                completion_callback,
                flags.into().unwrap_or_default().bits(),
            )
        };
        scope.finish();
        if r == -1 {
            return Err(self.last_error());
        }
        Ok(r as u64)
    }

    /// Wait for the handle.
    ///
    /// Waits up to timeout milliseconds for the socket and runs the handle; returns 1 when it made
    /// progress and 0 on timeout.
    ///
    /// See also [`Handle::aio_get_fd`].
    ///
    /// C: `nbd_poll(3)`.
    pub fn poll(&self, timeout: i32) -> Result<u32> {
        let scope = CallScope::enter();
        let r = unsafe { sys::nbd_poll(self.h, timeout) };
        scope.finish();
        if r == -1 {
            return Err(self.last_error());
        }
        Ok(r as u32)
    }

    /// The socket of the handle.
    ///
    /// Returns the file descriptor to poll for [`Handle::aio_get_direction`].
    ///
    /// See also [`Handle::aio_get_direction`].
    ///
    /// C: `nbd_aio_get_fd(3)`.
    pub fn aio_get_fd(&self) -> Result<std::os::fd::RawFd> {
        let scope = CallScope::enter();
        let r = unsafe { sys::nbd_aio_get_fd(self.h) };
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
    pub fn aio_get_direction(&self) -> u32 {
        let scope = CallScope::enter();
        let r = unsafe { sys::nbd_aio_get_direction(self.h) };
        scope.finish();
        r
    }

    /// Send outgoing data through an application thread.
    ///
    /// Hands every piece of data the handle sends to the [`WriterCallback`].
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
        writer: impl FnMut(&[u8]) -> i32 + Send + 'static,
    ) -> Result<()> {
        let writer = WriterCallback::new(writer).into_c(None);
        let scope = CallScope::enter();
        let r = unsafe { sys::nbd_set_concurrent_writer(self.h, writer) };
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
    pub fn concurrent_writer_error(&self, err: i32) -> Result<()> {
        let scope = CallScope::enter();
        let r = unsafe { sys::nbd_concurrent_writer_error(self.h, err) };
        scope.finish();
        if r == -1 {
            return Err(self.last_error());
        }
        Ok(())
    }
}
