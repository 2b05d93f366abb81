// buffer.rs: AioBuffer, memory an asynchronous command may use after the call that started it
// has returned, and the leases that keep Rust code away from it meanwhile.
use std::fmt;
use std::ops::{Deref, DerefMut};
use std::ptr::NonNull;
use std::sync::atomic::{AtomicIsize, Ordering};
use std::sync::Arc;

use crate::error::{Error, Result, EBUSY};

/// A heap buffer for the asynchronous calls ([`crate::Handle::aio_pread`],
/// [`crate::Handle::aio_pwrite`], ...).
///
/// The command leases the buffer from the moment it is issued until it retires: exclusively
/// for a read, which writes into it, or shared for a write, which only reads it.  Meanwhile
/// [`AioBuffer::try_read`] and [`AioBuffer::try_write`] return `None` where they would conflict,
/// and starting a conflicting command fails with `EBUSY`.  The lease ends when the C library
/// frees the command's completion closure, or just before it calls the completion callback, so
/// that callback may already read the data.  A clone shares the same memory (like an `Arc`),
/// which is how a completion callback reaches it:
///
/// ```no_run
/// # fn main() -> nbd::Result<()> {
/// # let h = nbd::Handle::new()?;
/// let buf = nbd::AioBuffer::new(4096);
/// let seen = buf.clone();
/// let done = nbd::CompletionCallback::new(move |error| {
///     if *error == 0 {
///         let data = seen.try_read().expect("the command has finished");
///         println!("first byte {}", data[0]);
///     }
///     1 // retire the command
/// });
/// h.aio_pread(&buf, 0, done, None)?;
/// while h.aio_in_flight()? > 0 {
///     h.poll(-1)?;
/// }
/// # Ok(())
/// # }
/// ```
#[derive(Clone)]
pub struct AioBuffer {
    shared: Arc<Shared>,
}

// The memory and who holds it: 0 nobody, n > 0 n shared holders (BufferRefs and commands that
// read it), EXCLUSIVE one holder that writes (a BufferMut or a command that fills it).
struct Shared {
    ptr: NonNull<u8>,
    len: usize,
    state: AtomicIsize,
}

const EXCLUSIVE: isize = -1;

// SAFETY: the bytes are only reached through a BufferRef, BufferMut or Lease, whose state
// transitions make access shared-xor-exclusive across threads.
unsafe impl Send for Shared {}
unsafe impl Sync for Shared {}

impl Shared {
    fn acquire(&self, exclusive: bool) -> bool {
        if exclusive {
            return self
                .state
                .compare_exchange(0, EXCLUSIVE, Ordering::Acquire, Ordering::Relaxed)
                .is_ok();
        }
        let mut cur = self.state.load(Ordering::Relaxed);
        loop {
            if cur == EXCLUSIVE {
                return false;
            }
            match self.state.compare_exchange_weak(
                cur,
                cur + 1,
                Ordering::Acquire,
                Ordering::Relaxed,
            ) {
                Ok(_) => return true,
                Err(now) => cur = now,
            }
        }
    }

    fn release(&self, exclusive: bool) {
        if exclusive {
            self.state.store(0, Ordering::Release);
        } else {
            self.state.fetch_sub(1, Ordering::Release);
        }
    }
}

impl Drop for Shared {
    fn drop(&mut self) {
        // SAFETY: ptr and len came from Box::<[u8]>::into_raw in AioBuffer::from.
        drop(unsafe {
            Box::from_raw(std::ptr::slice_from_raw_parts_mut(self.ptr.as_ptr(), self.len))
        });
    }
}

impl AioBuffer {
    /// A buffer of `len` zero bytes.
    pub fn new(len: usize) -> Self {
        AioBuffer::from(vec![0u8; len])
    }

    /// Its length in bytes.
    pub fn len(&self) -> usize {
        self.shared.len
    }

    /// Whether it holds no byte.
    pub fn is_empty(&self) -> bool {
        self.shared.len == 0
    }

    /// Whether a command or a [`BufferRef`] or [`BufferMut`] holds it now.
    pub fn is_busy(&self) -> bool {
        self.shared.state.load(Ordering::Acquire) != 0
    }

    /// Reads the bytes, unless a read command or a [`BufferMut`] holds the buffer.
    pub fn try_read(&self) -> Option<BufferRef<'_>> {
        // then, not then_some: a guard may only exist once acquired, as its drop releases.
        self.shared.acquire(false).then(|| BufferRef { shared: &self.shared })
    }

    /// Changes the bytes, unless any command, [`BufferRef`] or [`BufferMut`] holds the buffer.
    pub fn try_write(&self) -> Option<BufferMut<'_>> {
        self.shared.acquire(true).then(|| BufferMut { shared: &self.shared })
    }

    /// A copy of the bytes, unless a read command or a [`BufferMut`] holds the buffer.
    pub fn to_vec(&self) -> Option<Vec<u8>> {
        self.try_read().map(|b| b.to_vec())
    }

    /// Leases the buffer to a command being issued; EBUSY if that conflicts with a holder.
    pub(crate) fn lease(&self, exclusive: bool, call: &str, arg: &str) -> Result<Lease> {
        if !self.shared.acquire(exclusive) {
            return Err(Error::new(
                EBUSY,
                format!("{call}: {arg} is held by another command or borrowed"),
            ));
        }
        Ok(Lease { shared: Arc::clone(&self.shared), exclusive })
    }
}

impl From<Vec<u8>> for AioBuffer {
    fn from(v: Vec<u8>) -> Self {
        let b: Box<[u8]> = v.into_boxed_slice();
        let len = b.len();
        // SAFETY: Box::into_raw never returns null.
        let ptr = unsafe { NonNull::new_unchecked(Box::into_raw(b).cast::<u8>()) };
        AioBuffer { shared: Arc::new(Shared { ptr, len, state: AtomicIsize::new(0) }) }
    }
}

impl From<&[u8]> for AioBuffer {
    fn from(v: &[u8]) -> Self {
        AioBuffer::from(v.to_vec())
    }
}

impl fmt::Debug for AioBuffer {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("AioBuffer")
            .field("len", &self.len())
            .field("busy", &self.is_busy())
            .finish()
    }
}

/// Shared access to the bytes of an [`AioBuffer`]; derefs to `[u8]`.
pub struct BufferRef<'a> {
    shared: &'a Shared,
}

impl Deref for BufferRef<'_> {
    type Target = [u8];
    fn deref(&self) -> &[u8] {
        // SAFETY: this holder keeps writers out.
        unsafe { std::slice::from_raw_parts(self.shared.ptr.as_ptr(), self.shared.len) }
    }
}

impl Drop for BufferRef<'_> {
    fn drop(&mut self) {
        self.shared.release(false);
    }
}

/// Exclusive access to the bytes of an [`AioBuffer`]; derefs to `[u8]` mutably.
pub struct BufferMut<'a> {
    shared: &'a Shared,
}

impl Deref for BufferMut<'_> {
    type Target = [u8];
    fn deref(&self) -> &[u8] {
        // SAFETY: this holder is the only one.
        unsafe { std::slice::from_raw_parts(self.shared.ptr.as_ptr(), self.shared.len) }
    }
}

impl DerefMut for BufferMut<'_> {
    fn deref_mut(&mut self) -> &mut [u8] {
        // SAFETY: this holder is the only one.
        unsafe { std::slice::from_raw_parts_mut(self.shared.ptr.as_ptr(), self.shared.len) }
    }
}

impl Drop for BufferMut<'_> {
    fn drop(&mut self) {
        self.shared.release(true);
    }
}

/// A command's hold on a buffer, kept in its completion closure: it keeps the memory alive and
/// Rust code off it until the closure is freed (or its callback runs).
pub(crate) struct Lease {
    shared: Arc<Shared>,
    exclusive: bool,
}

impl Lease {
    pub(crate) fn as_ptr(&self) -> *mut u8 {
        self.shared.ptr.as_ptr()
    }

    pub(crate) fn len(&self) -> usize {
        self.shared.len
    }
}

impl Drop for Lease {
    fn drop(&mut self) {
        self.shared.release(self.exclusive);
    }
}
