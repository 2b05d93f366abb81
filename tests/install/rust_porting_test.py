#!/usr/bin/env python3
# rust_porting_test.py: a program written for libnbd's own Rust crate (crate libnbd) builds and
# runs on an installed nbdpp after changing only its Cargo.toml dependency line, as nbd-rust(3)
# says under "Porting from libnbd's crate": `cmake --install` into a scratch prefix, a cargo
# project outside the tree whose dependency line and .cargo/config.toml are taken from the
# installed page, built offline with an empty CARGO_HOME, run without LD_LIBRARY_PATH against
# nbdkit; the data read back, the callbacks' results, the error matched, and the libnbd.so.0
# loaded (the prefix's) are checked.
#
# The program is written the way libnbd's crate's examples are (the names that a libnbd-crate
# program failed to compile with on the nbd crate: CmdFlag, Size, Strict, Cookie, get_size as
# u64, Error::Recoverable(ErrorKind::WithErrno {..}), completions as Option<impl FnMut>).  Debian
# 12 has no package of libnbd's crate (`apt-cache policy librust-libnbd-dev`: no candidate), so
# this test cannot build the same text against it; the text uses only names and signatures of
# libnbd 1.22's crate, which generator/abi/libnbd-rust-1.22.txt lists and test_rust_compat checks
# the libnbd crate against.  The same text was type-checked once by hand (`cargo check`) against
# libnbd 1.22's crate source: its dependencies are not all in Debian 12 (bitflags 2, errno 0.3,
# os_socketaddr), so that check used Debian's bitflags 1.3, thiserror and libc and stand-ins with
# the shape of errno::Errno and os_socketaddr::OsSocketAddr.
# Usage:
#   rust_porting_test.py BUILD_DIR SCRATCH_DIR LIBDIR [--cmake CMAKE] [--cargo CARGO]
# Exits 77 (ctest SKIP_RETURN_CODE) when nbdkit or cargo is missing.
import os
import shutil
import sys

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from consumers_test import (SKIP, Failure, check_output, clean_env,  # noqa: E402
                            install_arguments, man_page_blocks, run, with_install)

# The project as it was for libnbd's crate, but for the line the page gives.
CARGO_TOML = """\
[package]
name = "porting"
version = "0.1.0"
edition = "2021"

[dependencies]
{dependency}"""

PROGRAM = r"""
// A program for libnbd's Rust crate: size, first sector, an asynchronous read with a completion
// closure, block status, flag sets, and an error told apart by kind.
use std::env;
use std::ffi::c_int;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};

use libnbd::types::Cookie;
use libnbd::{CmdFlag, Error, ErrorKind, Handle, Size, Strict, CONTEXT_BASE_ALLOCATION};

fn main() -> libnbd::Result<()> {
    let uri = env::args().nth(1).expect("usage: porting URI");
    let nbd = Handle::new()?;
    nbd.add_meta_context(CONTEXT_BASE_ALLOCATION)?;
    nbd.set_strict_mode(nbd.get_strict_mode() | Strict::BOUNDS)?;
    nbd.connect_uri(uri.as_str())?;

    let size: u64 = nbd.get_size()?;
    println!("size={size}");
    let preferred: u64 = nbd.get_block_size(Size::Preferred)?;
    println!("preferred_ok={}", preferred < size);

    // The first sector, written with FUA and read back.
    let sector: Vec<u8> = (0..512u32).map(|i| (i * 7 % 251) as u8).collect();
    nbd.pwrite(&sector, 0, Some(CmdFlag::FUA))?;
    let mut first = [0u8; 512];
    nbd.pread(&mut first, 0, None)?;
    println!("roundtrip={}", if first[..] == sector[..] { "ok" } else { "differs" });

    // Asynchronous: a write retired by aio_command_completed, then a read whose completion
    // closure retires it.
    let data: &'static [u8] = Box::leak(vec![0xa5u8; 65536].into_boxed_slice());
    let write: Cookie = nbd.aio_pwrite(data, 65536, None::<fn(&mut c_int) -> c_int>, None)?;
    while !nbd.aio_command_completed(write.0)? {
        nbd.poll(-1)?;
    }
    let buf: &'static mut [u8] = Box::leak(vec![0u8; 65536].into_boxed_slice());
    let buf_at = buf.as_ptr() as usize;
    let completions = Arc::new(AtomicUsize::new(0));
    let counter = completions.clone();
    let read: Cookie = nbd.aio_pread(
        buf,
        65536,
        Some(move |error: &mut c_int| {
            if *error == 0 {
                counter.fetch_add(1, Ordering::SeqCst);
            }
            1
        }),
        Some(CmdFlag::empty()),
    )?;
    while nbd.aio_in_flight()? > 0 {
        nbd.poll(-1)?;
    }
    // The command has retired: the buffer is the program's again.
    let back = unsafe { std::slice::from_raw_parts(buf_at as *const u8, 65536) };
    println!("aio_read={}", if back == data { "ok" } else { "differs" });
    println!("completions={} cookies_ordered={}", completions.load(Ordering::SeqCst), read.0 > write.0);

    // Block status in base:allocation: data at the start, a hole at the end.
    let extents = Arc::new(Mutex::new(Vec::new()));
    let into = extents.clone();
    nbd.block_status(
        size,
        0,
        move |metacontext: &[u8], _offset: u64, entries: &[u32], _error: &mut c_int| {
            if metacontext == CONTEXT_BASE_ALLOCATION {
                into.lock().unwrap().extend_from_slice(entries);
            }
            0
        },
        None,
    )?;
    let extents = extents.lock().unwrap();
    let total: u64 = extents.chunks(2).map(|e| u64::from(e[0])).sum();
    println!(
        "extents_total={total} first_flags={} last_flags={}",
        extents[1],
        extents[extents.len() - 1]
    );

    let flags = CmdFlag::FUA | CmdFlag::DF;
    println!("flags={:#x} contains_df={}", flags.bits(), flags.contains(CmdFlag::DF));

    // A read past the end: refused, and the handle stays usable.
    let mut past = [0u8; 512];
    match nbd.pread(&mut past, size, None) {
        Err(Error::Recoverable(ErrorKind::WithErrno { errno, description })) => {
            println!("error=recoverable errno={} call={}", errno.0, description.starts_with("nbd_pread"))
        }
        Err(e) => println!("error=other {e}"),
        Ok(()) => println!("error=none"),
    }
    println!("package={}", String::from_utf8_lossy(nbd.get_package_name()));

    let maps = std::fs::read_to_string("/proc/self/maps").unwrap();
    if let Some(line) = maps.lines().find(|l| l.contains("/libnbd.so")) {
        println!("library={}", &line[line.find('/').unwrap()..]);
    }
    Ok(())
}
"""

# What the program prints against nbdkit's memory plugin of 1 MiB (EINVAL = 22).
EXPECTED = {
    "size": "1048576",
    "preferred_ok": "true",
    "aio_read": "ok",
    "completions": "1 cookies_ordered=true",
    "extents_total": "1048576 first_flags=0 last_flags=3",
    "flags": "0x5 contains_df=true",
    "error": "recoverable errno=22 call=true",
}


def porting_recipe(prefix, libdir):
    """The dependency line and .cargo/config.toml ([env] NBDPP_LIB_DIR for the nbd crate's
    build script, [build] rustflags for the run path) nbd-rust(3) gives, PREFIX filled in."""
    blocks, page = man_page_blocks(prefix)
    line = next((b for b in blocks if b.startswith("libnbd = { path = ")), None)
    config = next((b for b in blocks if b.startswith("[env]") and "rpath" in b), None)
    if line is None or config is None:
        raise Failure(f"{page}: no libnbd dependency line or .cargo/config.toml block")
    if line.count("\n") != 1:
        raise Failure(f"{page}: the dependency block is more than one line:\n{line}")
    line = line.replace("PREFIX", prefix)
    crate = os.path.join(prefix, "share", "nbdpp", "rust", "libnbd")
    if crate not in line:
        raise Failure(f"{page}: the dependency line does not name {crate}:\n{line}")
    return line, config.replace("PREFIX/lib", os.path.join(prefix, libdir))


def main(argv=None):
    args = install_arguments(__doc__).parse_args(argv)
    cargo = args.cargo if args.cargo and os.access(args.cargo, os.X_OK) else shutil.which("cargo")
    for tool, path in (("nbdkit", shutil.which("nbdkit")), ("cargo", cargo)):
        if not path:
            print(f"SKIP: {tool} is not installed")
            return SKIP

    def porting(prefix, scratch, server):
        work = os.path.join(scratch, "porting")
        os.makedirs(os.path.join(work, "src"))
        os.makedirs(os.path.join(work, ".cargo"))
        line, config = porting_recipe(prefix, args.libdir)
        with open(os.path.join(work, "Cargo.toml"), "w") as f:
            f.write(CARGO_TOML.format(dependency=line))
        with open(os.path.join(work, ".cargo", "config.toml"), "w") as f:
            f.write(config)
        with open(os.path.join(work, "src", "main.rs"), "w") as f:
            f.write(PROGRAM)
        home = os.path.join(scratch, "cargo-home")  # empty: nothing cached, nothing fetched
        os.makedirs(home)
        env = clean_env(CARGO_HOME=home, CARGO_TARGET_DIR=os.path.join(work, "target"))
        env.pop("CARGO_ENCODED_RUSTFLAGS", None)
        run([cargo, "build", "--offline"], env, cwd=work, timeout=600)
        print(f"ok: built with `{line.strip()}` and the page's .cargo/config.toml")
        out = run([os.path.join(work, "target", "debug", "porting"), server.uri], clean_env())
        check_output("libnbd-crate program on the installed libnbd crate", out, prefix)
        fields = dict(l.split("=", 1) for l in out.splitlines() if "=" in l)
        wrong = {k: fields.get(k) for k, v in EXPECTED.items() if fields.get(k) != v}
        if wrong:
            raise Failure(f"unexpected output {wrong}, expected {EXPECTED}:\n{out}")
        print("ok: size, block sizes, aio with and without completion, block status, flags "
              "and the recoverable error are as libnbd's crate gives them")

    return with_install(args.build_dir, args.scratch, args.cmake, porting)


if __name__ == "__main__":
    sys.exit(main())
