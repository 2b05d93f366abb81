// fill: fills an export with a byte pattern, 64 writes in flight, while the library's own writer
// thread sends them (nbd_start_concurrent_writer) and this thread reads the replies.
//   cargo run --example fill -- nbd+unix:///?socket=/tmp/sock
use std::sync::atomic::{AtomicI32, Ordering};
use std::sync::Arc;

use nbd::{AioBuffer, CompletionCallback, Handle};

const CHUNK: usize = 1024 * 1024;
const IN_FLIGHT: u32 = 64;

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let uri = std::env::args().nth(1).ok_or("usage: fill URI")?;
    let h = Handle::new()?;
    h.connect_uri(&uri)?;
    h.start_concurrent_writer()?;
    let size = h.get_size()?;

    // One buffer serves every write: writes only share it.
    let buf = AioBuffer::from(vec![0xa5u8; CHUNK]);
    let first_error = Arc::new(AtomicI32::new(0));
    let mut offset = 0u64;
    while offset < size {
        while h.aio_in_flight()? >= IN_FLIGHT {
            h.poll(-1)?;
        }
        let len = (size - offset).min(CHUNK as u64) as usize;
        let chunk = if len == CHUNK { buf.clone() } else { AioBuffer::from(vec![0xa5u8; len]) };
        let seen = first_error.clone();
        let written = CompletionCallback::new(move |error| {
            let _ = seen.compare_exchange(0, *error, Ordering::SeqCst, Ordering::SeqCst);
            1 // retire the command
        });
        h.aio_pwrite(&chunk, offset, written, None)?;
        offset += len as u64;
    }
    while h.aio_in_flight()? > 0 {
        h.poll(-1)?;
    }
    match first_error.load(Ordering::SeqCst) {
        0 => h.flush(None)?,
        e => return Err(std::io::Error::from_raw_os_error(e).into()),
    }
    println!("wrote {size} bytes");
    Ok(()) // dropping the handle stops the writer thread
}
