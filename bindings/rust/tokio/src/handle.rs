// handle.rs: AsyncHandle, what its generated methods share (issuing a call, waiting for a
// completion or a handle state), and the state the driver task shares with them.
use std::future::Future;
use std::io;
use std::pin::pin;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex, PoisonError};
use std::task::Waker;

use nbd::{AioBuffer, CompletionCallback, Error, Handle, Result};
use tokio::sync::{oneshot, watch, Notify};
use tokio::task::JoinHandle;

use crate::driver::{Driver, Registration};

// errno values (Linux) this crate reports itself.
const EINVAL: i32 = 22;
const ENOTCONN: i32 = 107;

/// An NBD handle whose asynchronous calls are `async fn`s, run by a task on a tokio runtime.
///
/// See the [crate documentation](crate) for how it is driven, what dropping a future does,
/// and how errors arrive.  It is [`Send`] and [`Sync`]: tasks may share one in an `Arc` and
/// have commands in flight at the same time.
pub struct AsyncHandle {
    shared: Arc<Shared>,
    driver: JoinHandle<()>,
}

/// The lifecycle state of the handle, as the driver last saw it: what `Until` waits on.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Phase {
    Created,
    Connecting,
    Negotiating,
    Connected,
    Closed,
    Dead,
}

/// What the driver task and the futures share.
pub(crate) struct Shared {
    pub(crate) handle: Handle,
    /// The driver's registration of the handle's socket; None while it has none.
    pub(crate) reg: Mutex<Option<Registration>>,
    /// The driver task's waker, woken when a call may have changed what it waits for.
    waker: Mutex<Option<Waker>>,
    /// Set when the AsyncHandle is dropped: the driver ends.
    pub(crate) stopped: AtomicBool,
    /// The error that ended the connection, once known.
    death: Mutex<Option<Error>>,
    phase: watch::Sender<Phase>,
    /// Notified whenever the driver finds no command in flight.
    pub(crate) idle: Notify,
}

impl Shared {
    /// Wakes the driver task so that it looks at the handle again.
    pub(crate) fn kick(&self) {
        if let Some(w) = self.waker.lock().unwrap_or_else(PoisonError::into_inner).as_ref() {
            w.wake_by_ref();
        }
    }

    pub(crate) fn set_waker(&self, waker: &Waker) {
        let mut slot = self.waker.lock().unwrap_or_else(PoisonError::into_inner);
        if !slot.as_ref().is_some_and(|w| w.will_wake(waker)) {
            *slot = Some(waker.clone());
        }
    }

    /// The handle's lifecycle state now.
    pub(crate) fn phase_now(&self) -> Phase {
        let h = &self.handle;
        if h.aio_is_dead() {
            Phase::Dead
        } else if h.aio_is_closed() {
            Phase::Closed
        } else if h.aio_is_created() {
            Phase::Created
        } else if h.aio_is_connecting() {
            Phase::Connecting
        } else if h.aio_is_negotiating() {
            Phase::Negotiating
        } else {
            // Ready or processing, which includes connecting again after a lost connection
            // (nbd_set_reconnect_delay): the commands in flight wait for the new connection.
            Phase::Connected
        }
    }

    /// Tells the waiting futures about a change of state.
    pub(crate) fn publish(&self, phase: Phase) {
        self.phase.send_if_modified(|p| std::mem::replace(p, phase) != phase);
    }

    /// Keeps the first error known to have ended the connection.
    pub(crate) fn record_death(&self, e: &Error) {
        let mut death = self.death.lock().unwrap_or_else(PoisonError::into_inner);
        if death.is_none() {
            *death = Some(e.clone().with_fatal(true));
        }
    }

    /// The error that ended the connection, for a call that failed because of it.
    fn death(&self, call: &str) -> Error {
        match &*self.death.lock().unwrap_or_else(PoisonError::into_inner) {
            Some(e) => e.clone(),
            None => {
                Error::new(ENOTCONN, format!("{call}: the connection is dead")).with_fatal(true)
            }
        }
    }

    /// The error of a command that completed with `errno`.
    fn command_error(&self, call: &str, errno: i32) -> Error {
        if self.handle.aio_is_dead() {
            return self.death(call);
        }
        let text = io::Error::from_raw_os_error(errno);
        Error::new(errno, format!("{call}: the command failed: {text}"))
    }
}

/// What ends a call that has no completion callback.
#[derive(Clone, Copy, Debug)]
pub(crate) enum Until {
    /// The handle has left the created and connecting states: it is negotiating (in option
    /// mode) or connected.
    Connected,
    /// The handle is closed.
    Closed,
}

impl AsyncHandle {
    /// Creates a handle (`nbd_create(3)`) and spawns its driver on the current tokio runtime.
    ///
    /// # Errors
    ///
    /// - `EINVAL`: not called from within a tokio runtime.
    /// - `ENOMEM`: the handle could not be created.
    pub fn new() -> Result<Self> {
        Self::from_handle(Handle::new()?)
    }

    /// Takes over `handle`, in any state (created, or already configured or connected with
    /// synchronous calls), and spawns its driver on the current tokio runtime.
    ///
    /// # Errors
    ///
    /// - `EINVAL`: not called from within a tokio runtime; `handle` is dropped.
    pub fn from_handle(handle: Handle) -> Result<Self> {
        let rt = tokio::runtime::Handle::try_current().map_err(|e| {
            Error::new(EINVAL, format!("nbd_tokio::AsyncHandle: no tokio runtime here: {e}"))
        })?;
        let (phase, _) = watch::channel(Phase::Created);
        let shared = Arc::new(Shared {
            handle,
            reg: Mutex::new(None),
            waker: Mutex::new(None),
            stopped: AtomicBool::new(false),
            death: Mutex::new(None),
            phase,
            idle: Notify::new(),
        });
        shared.publish(shared.phase_now());
        let driver = rt.spawn(Driver::new(&shared));
        Ok(AsyncHandle { shared, driver })
    }

    /// The synchronous handle underneath, for the calls that are not asynchronous (settings,
    /// `get_size`, `can_*`, ...).  See the [crate documentation](crate#the-synchronous-handle).
    pub fn handle(&self) -> &Handle {
        &self.shared.handle
    }

    /// Waits until no command is in flight on the handle, the commands of dropped futures
    /// included (their replies have then been read and discarded).  Returns at once on a handle
    /// that is not connected, or has no command in flight.
    pub async fn drain(&self) {
        loop {
            let mut idle = pin!(self.shared.idle.notified());
            idle.as_mut().enable();
            if self.handle().aio_in_flight().map_or(true, |n| n == 0) {
                return;
            }
            idle.await;
        }
    }

    /// The result of the C call that issued a command or request: on success the driver is
    /// woken, as the call may have changed what it waits for.
    pub(crate) fn issue<T>(&self, r: Result<T>) -> Result<T> {
        if let Err(e) = &r {
            if e.is_fatal() {
                self.shared.record_death(e);
            }
        }
        self.shared.kick();
        r
    }

    /// A completion callback for a command of the C call `call`, and the future that resolves
    /// with the command's outcome once the callback has run.
    pub(crate) fn completion(
        &self,
        call: &'static str,
    ) -> (CompletionCallback, impl Future<Output = Result<()>> + '_) {
        let (tx, rx) = oneshot::channel::<i32>();
        let mut tx = Some(tx);
        let callback = CompletionCallback::new(move |error: &mut i32| {
            if let Some(tx) = tx.take() {
                // The future may be gone: the outcome of an abandoned command is discarded.
                let _ = tx.send(*error);
            }
            1 // retire the command
        });
        let shared = &self.shared;
        let done = async move {
            match rx.await {
                Ok(0) => Ok(()),
                Ok(errno) => Err(shared.command_error(call, errno)),
                // The library freed the callback without calling it.
                Err(_) => Err(shared.death(call)),
            }
        };
        (callback, done)
    }

    /// The future that resolves once the handle reaches the state `until` names, for a request
    /// of the C call `call` issued after this returns.
    pub(crate) fn until(
        &self,
        until: Until,
        call: &'static str,
    ) -> impl Future<Output = Result<()>> + '_ {
        let mut phase = self.shared.phase.subscribe();
        let shared = &self.shared;
        async move {
            loop {
                // The state itself, not the driver's report of it, which may lag behind.
                match (until, shared.phase_now()) {
                    (_, Phase::Dead) => return Err(shared.death(call)),
                    (Until::Connected, Phase::Created | Phase::Connecting) => {}
                    (Until::Connected, Phase::Closed) => {
                        return Err(Error::new(ENOTCONN, format!("{call}: the handle is closed")))
                    }
                    (Until::Connected, _) | (Until::Closed, Phase::Closed) => return Ok(()),
                    (Until::Closed, _) => {}
                }
                if phase.changed().await.is_err() {
                    return Err(shared.death(call));
                }
            }
        }
    }
}

impl Drop for AsyncHandle {
    fn drop(&mut self) {
        // The driver ends at its next poll, or after the step it is taking on another thread
        // (which then also drops the registration).  Unless it is in such a step, the socket's
        // duplicate is closed here and the handle with the last reference, just below.
        self.shared.stopped.store(true, Ordering::SeqCst);
        if let Ok(mut reg) = self.shared.reg.try_lock() {
            reg.take();
        }
        self.driver.abort();
        self.shared.kick();
    }
}

impl std::fmt::Debug for AsyncHandle {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("AsyncHandle").field("handle", &self.shared.handle).finish()
    }
}

/// The bytes of a buffer whose command has retired (the `_vec` forms of reads).
pub(crate) fn bytes_of(buf: &AioBuffer) -> Vec<u8> {
    // The lease ends before the completion callback runs, so nothing holds the buffer now.
    buf.to_vec().unwrap_or_default()
}
