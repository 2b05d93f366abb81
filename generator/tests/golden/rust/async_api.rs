// async_api.rs: the async form of every asynchronous call of api.yaml, as methods of
// nbd_tokio::AsyncHandle (included by bindings/rust/tokio/src/lib.rs).
// GENERATED from api.yaml by generator/generate.py: DO NOT EDIT.
//
// Each method makes what ends the call (a completion, or a wait for a handle state) before it
// issues the call through the nbd crate's method of the same call, so nothing that happens in
// between is missed, then awaits it.  The call is issued at the first poll; from then on
// dropping the future leaves it in flight.

#[allow(unused_imports)]
use nbd::*;

#[allow(unused_imports)]
use crate::handle::Until;
use crate::AsyncHandle;

impl AsyncHandle {
    /// Read data.
    ///
    /// Issues [`Handle::aio_pread`] and waits for the command to complete: `Ok` when it succeeded,
    /// else the error it completed with. See [`Handle::pread`] for what the arguments mean.
    ///
    /// Dropping the future leaves the command in flight; its outcome is then discarded, and `buf`
    /// stays leased to it (alive, and out of reach of Rust code) until it retires.
    ///
    /// C: `nbd_aio_pread(3)`.
    pub async fn pread(
        &self,
        buf: &AioBuffer,
        offset: u64,
        chunk_callback: impl FnMut(&[u8], u64, u32, &mut i32) -> i32 + Send + 'static,
        flags: impl Into<Option<CmdFlags>>,
    ) -> Result<()> {
        let (done_callback, done) = self.completion("nbd_aio_pread");
        self.issue(self.handle().aio_pread(buf, offset, chunk_callback, done_callback, flags))?;
        done.await
    }

    /// Read data, returning the bytes.
    ///
    /// [`Self::pread`] into a new buffer of `count` bytes, returned once the command has
    /// completed; dropping the future frees the buffer when the command retires.
    pub async fn pread_vec(
        &self,
        count: usize,
        offset: u64,
        chunk_callback: impl FnMut(&[u8], u64, u32, &mut i32) -> i32 + Send + 'static,
        flags: impl Into<Option<CmdFlags>>,
    ) -> Result<Vec<u8>> {
        let buf = AioBuffer::new(count);
        self.pread(&buf, offset, chunk_callback, flags).await?;
        Ok(crate::handle::bytes_of(&buf))
    }

    /// Start connecting to a socket address, then wait for the outcome.
    ///
    /// Issues [`Handle::aio_connect`] and waits until the handle has connected (or, in option
    /// mode, is negotiating): the error that ended the connection if it died meanwhile.
    ///
    /// Dropping the future leaves the request in flight; its outcome is then discarded.
    ///
    /// C: `nbd_aio_connect(3)`.
    pub async fn connect(&self, addr: &SockAddr) -> Result<()> {
        let done = self.until(Until::Connected, "nbd_aio_connect");
        self.issue(self.handle().aio_connect(addr))?;
        done.await
    }

    /// Write data.
    ///
    /// Issues [`Handle::aio_pwrite`] and waits for the command to complete: `Ok` when it
    /// succeeded, else the error it completed with. See [`Handle::pwrite`] for what the arguments
    /// mean.
    ///
    /// Dropping the future leaves the command in flight; its outcome is then discarded, and `buf`
    /// stays leased to it (alive, and out of reach of Rust code) until it retires.
    ///
    /// C: `nbd_aio_pwrite(3)`.
    pub async fn pwrite(
        &self,
        buf: &AioBuffer,
        offset: u64,
        flags: impl Into<Option<CmdFlags>>,
    ) -> Result<()> {
        let (done_callback, done) = self.completion("nbd_aio_pwrite");
        self.issue(self.handle().aio_pwrite(buf, offset, done_callback, flags))?;
        done.await
    }
}
