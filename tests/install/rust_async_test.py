#!/usr/bin/env python3
# rust_async_test.py: a cargo project outside the tree on the installed async crate nbd-tokio,
# set up literally as nbd-rust(3) says (its [dependencies] with nbd-tokio, the
# .cargo/config.toml that takes tokio from Debian's registry, the build.rs of the SYNOPSIS),
# builds with an empty CARGO_HOME and no network, and its programs run against an nbdkit
# started here without LD_LIBRARY_PATH: one checks a round trip and that the prefix's
# libnbd.so.0 was loaded, the other is the page's example program.  Without the
# .cargo/config.toml the same project does not resolve tokio.
# Usage:
#   rust_async_test.py BUILD_DIR SCRATCH_DIR LIBDIR [--cmake CMAKE] [--cargo CARGO]
#                      [--registry DIR]
# LIBDIR is CMAKE_INSTALL_LIBDIR; SCRATCH_DIR is emptied first.  Exits 77 (ctest
# SKIP_RETURN_CODE) when cargo, nbdkit or Debian's tokio is missing.
import glob
import os
import shutil
import subprocess
import sys

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

from consumers_test import (SKIP, Failure, check_output, clean_env,  # noqa: E402
                            install_arguments, man_page_blocks, man_page_recipe, run,
                            with_install)

RUST_ASYNC_MAIN = r"""
#[tokio::main(flavor = "current_thread")]
async fn main() {
    let uri = std::env::args().nth(1).expect("usage: consumer URI");
    let h = nbd_tokio::AsyncHandle::new().unwrap();
    h.connect_uri(&uri).await.unwrap();
    let out: Vec<u8> = (0..4096u32).map(|i| (i * 5 + 7) as u8).collect();
    h.pwrite(&nbd::AioBuffer::from(out.clone()), 20480, None).await.unwrap();
    let back = h.pread_vec(4096, 20480, None).await.unwrap();
    println!("package={}", h.handle().get_package_name());
    println!("roundtrip={}", if back == out { "ok" } else { "differs" });
    let maps = std::fs::read_to_string("/proc/self/maps").unwrap();
    if let Some(line) = maps.lines().find(|l| l.contains("/libnbd.so")) {
        println!("library={}", &line[line.find('/').unwrap()..]);
    }
    h.disconnect(None).await.unwrap();
}
"""


def async_recipe(prefix):
    """nbd-rust(3)'s Cargo.toml dependencies for nbd-tokio, its .cargo/config.toml, the
    build.rs of its SYNOPSIS and its example program."""
    blocks, _ = man_page_blocks(prefix)
    deps = next((b for b in blocks if b.startswith("[dependencies]") and "nbd-tokio" in b), None)
    config = next((b for b in blocks if b.startswith("[source.crates-io]")), None)
    example = next((b for b in blocks if b.startswith("#[tokio::main]")), None)
    if deps is None or config is None or example is None:
        raise Failure("nbd-rust(3) lacks the nbd-tokio [dependencies], the .cargo/config.toml "
                      "or the #[tokio::main] example among its .nf blocks")
    _, build_rs = man_page_recipe(prefix)
    cargo_toml = ('[package]\nname = "consumer"\nversion = "0.1.0"\nedition = "2021"\n\n'
                  + deps.replace("PREFIX", prefix))
    return cargo_toml, config, build_rs, example


def installed_crate(prefix):
    crate = os.path.join(prefix, "share", "nbdpp", "rust", "nbd-tokio")
    for rel in ("Cargo.toml", "build.rs", "src/lib.rs", "generated/async_api.rs"):
        if not os.path.isfile(os.path.join(crate, rel)):
            raise Failure(f"{crate}/{rel} is not installed")
    with open(os.path.join(crate, "Cargo.toml")) as f:
        manifest = f.read()
    if 'nbd = { path = "../nbd" }' not in manifest:
        raise Failure(f"{crate}/Cargo.toml does not name the nbd crate beside it:\n{manifest}")
    print(f"ok: {crate} installed, depending on ../nbd")


def consumer(prefix, libdir, scratch, server, cargo):
    cargo_toml, config, build_rs, example = async_recipe(prefix)
    work = os.path.join(scratch, "rust-async")
    os.makedirs(os.path.join(work, "src", "bin"))
    files = {"Cargo.toml": cargo_toml, "build.rs": build_rs, "src/main.rs": RUST_ASYNC_MAIN,
             "src/bin/example.rs": example.replace("nbd+unix:///?socket=/tmp/sock", server.uri)}
    for rel, text in files.items():
        with open(os.path.join(work, rel), "w") as f:
            f.write(text)
    home = os.path.join(scratch, "cargo-home")  # empty: nothing cached, nothing fetched
    os.makedirs(home)
    env = clean_env(CARGO_HOME=home, CARGO_TARGET_DIR=os.path.join(work, "target"),
                    PKG_CONFIG_PATH=os.path.join(prefix, libdir, "pkgconfig"))

    # Without the registry's configuration, tokio cannot be found.
    r = subprocess.run([cargo, "build", "--offline"], env=env, cwd=work, capture_output=True,
                       text=True, timeout=600)
    if r.returncode == 0 or "tokio" not in r.stderr:
        raise Failure(f"cargo build without .cargo/config.toml: rc {r.returncode}, expected a "
                      f"failure to find tokio:\n{r.stderr}")
    print("ok: without .cargo/config.toml cargo does not find tokio")

    os.makedirs(os.path.join(work, ".cargo"))
    with open(os.path.join(work, ".cargo", "config.toml"), "w") as f:
        f.write(config)
    run([cargo, "build", "--offline", "--bins"], env, cwd=work, timeout=900)
    out = run([os.path.join(work, "target", "debug", "consumer"), server.uri], clean_env())
    check_output("Rust async program depending on the installed nbd-tokio", out, prefix)
    out = run([os.path.join(work, "target", "debug", "example")], clean_env())
    if out != "4096 bytes read\n":
        raise Failure(f"nbd-rust(3)'s example printed {out!r}")
    print("ok: nbd-rust(3)'s async example builds and runs")


def main(argv=None):
    ap = install_arguments(__doc__)
    ap.add_argument("--registry", default="/usr/share/cargo/registry")
    args = ap.parse_args(argv)
    cargo = args.cargo if args.cargo and os.access(args.cargo, os.X_OK) else shutil.which("cargo")
    if not cargo:
        print("SKIP: cargo not found")
        return SKIP
    if not shutil.which("nbdkit"):
        print("SKIP: nbdkit is not installed")
        return SKIP
    for crate in ("tokio", "tokio-macros"):
        if not glob.glob(os.path.join(args.registry, crate + "-[0-9]*")):
            print(f"SKIP: crate {crate} is not in {args.registry} (librust-{crate}-dev)")
            return SKIP

    def body(prefix, scratch, server):
        installed_crate(prefix)
        consumer(prefix, args.libdir, scratch, server, cargo)

    return with_install(args.build_dir, args.scratch, args.cmake, body)


if __name__ == "__main__":
    sys.exit(main())
