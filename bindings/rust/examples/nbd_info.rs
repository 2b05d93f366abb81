// nbd_info: prints what a server says about an export, and its allocation map.
//   cargo run --example nbd_info -- nbd+unix:///?socket=/tmp/sock
use std::sync::{Arc, Mutex};

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let uri = std::env::args().nth(1).ok_or("usage: nbd_info URI")?;
    let h = nbd::Handle::new()?;
    h.add_meta_context(nbd::CONTEXT_BASE_ALLOCATION)?;
    h.connect_uri(&uri)?;

    let size = h.get_size()?;
    println!("export size: {size} bytes");
    println!("protocol: {}", h.get_protocol()?);
    println!("read-only: {}", h.is_read_only()?);
    for (name, can) in [
        ("flush", h.can_flush()?),
        ("fua", h.can_fua()?),
        ("trim", h.can_trim()?),
        ("zero", h.can_zero()?),
        ("multi-conn", h.can_multi_conn()?),
    ] {
        println!("can {name}: {can}");
    }
    for which in nbd::BlockSize::ALL {
        println!("block size {which:?}: {}", h.get_block_size(which)?);
    }

    if !h.can_meta_context(nbd::CONTEXT_BASE_ALLOCATION)? {
        return Ok(());
    }
    // The extent callback runs inside block_status; it collects into shared state.
    let extents = Arc::new(Mutex::new(Vec::new()));
    let mut offset = 0u64;
    while offset < size as u64 {
        let found = extents.clone();
        h.block_status(
            size as u64 - offset,
            offset,
            move |_: &str, at, entries: &[u32], _: &mut i32| {
                let mut found = found.lock().unwrap();
                let mut at = at;
                for pair in entries.chunks(2) {
                    found.push((at, pair[0] as u64, pair[1]));
                    at += pair[0] as u64;
                }
                0
            },
            None,
        )?;
        let end = extents.lock().unwrap().last().map(|&(at, len, _)| at + len);
        match end {
            Some(end) if end > offset => offset = end,
            _ => break,
        }
    }
    for (at, len, flags) in extents.lock().unwrap().iter() {
        let kind = match (flags & nbd::STATE_HOLE != 0, flags & nbd::STATE_ZERO != 0) {
            (true, true) => "hole, reads as zeroes",
            (true, false) => "hole",
            (false, true) => "data, reads as zeroes",
            (false, false) => "data",
        };
        println!("{at:>12} {len:>12} {kind}");
    }
    Ok(())
}
