#!/usr/bin/env python3
# consumers_test.py: programs built outside the tree against a `cmake --install` prefix load
# that prefix's libnbd.so.0, not the system's: a C program through pkg-config, a C++ program
# through find_package(nbdpp), the installed nbdpp command and examples, and a cargo project
# depending on the installed Rust crate, each run without LD_LIBRARY_PATH against an nbdkit started here; and the
# crate's build script refuses a libnbd.so without the NBDPP_1.0 version node.
# Usage:
#   consumers_test.py BUILD_DIR SCRATCH_DIR LIBDIR [--cmake CMAKE] [--cargo CARGO]
#                     [--foreign-lib-dir DIR]
# LIBDIR is CMAKE_INSTALL_LIBDIR; SCRATCH_DIR is emptied first.  Exits 77 (ctest
# SKIP_RETURN_CODE) when nbdkit, pkg-config or a C compiler is missing; without cargo the Rust
# part says SKIP and the rest still runs.
import argparse
import glob
import os
import shutil
import subprocess
import sys
import time

SKIP = 77

C_PROGRAM = r"""
/* consumer.c: a libnbd program, built with `pkg-config --cflags --libs nbdpp`. */
#include <stdio.h>
#include <string.h>
#include <libnbd.h>

/* The file the dynamic linker loaded libnbd.so.0 from. */
static void print_library(void) {
  char line[4096];
  FILE *maps = fopen("/proc/self/maps", "r");
  while (maps && fgets(line, sizeof line, maps)) {
    char *path = strchr(line, '/');
    if (path && strstr(path, "/libnbd.so")) {
      printf("library=%s", path);
      break;
    }
  }
  if (maps)
    fclose(maps);
}

int main(int argc, char **argv) {
  char out[4096], in[4096];
  struct nbd_handle *h = nbd_create();
  if (argc != 2 || h == NULL || nbd_connect_uri(h, argv[1]) == -1) {
    fprintf(stderr, "%s\n", nbd_get_error());
    return 1;
  }
  for (size_t i = 0; i < sizeof out; ++i)
    out[i] = (char)(i * 7 + 1);
  if (nbd_pwrite(h, out, sizeof out, 8192, 0) == -1 || nbd_pread(h, in, sizeof in, 8192, 0) == -1) {
    fprintf(stderr, "%s\n", nbd_get_error());
    return 1;
  }
  printf("package=%s\nroundtrip=%s\n", nbd_get_package_name(h),
         memcmp(in, out, sizeof in) == 0 ? "ok" : "differs");
  print_library();
  nbd_close(h);
  return 0;
}
"""

CXX_PROGRAM = r"""
// consumer.cpp: a C++ program on nbd/nbd.hpp, built by CMake with find_package(nbdpp).
#include <cstdio>
#include <fstream>
#include <string>
#include <vector>
#include <nbd/nbd.hpp>

int main(int argc, char** argv) {
  if (argc != 2)
    return 2;
  nbd::Handle h;
  h.connect_uri(argv[1]);
  std::vector<std::byte> out(4096), in(4096);
  for (size_t i = 0; i < out.size(); ++i)
    out[i] = static_cast<std::byte>(i * 5 + 3);
  h.pwrite(out, 12288);
  h.pread(in, 12288);
  std::printf("package=%s\nroundtrip=%s\n", std::string{h.get_package_name()}.c_str(),
              in == out ? "ok" : "differs");
  std::ifstream maps("/proc/self/maps");
  for (std::string line; std::getline(maps, line);) {
    auto slash = line.find('/');
    if (slash != std::string::npos && line.find("/libnbd.so", slash) != std::string::npos) {
      std::printf("library=%s\n", line.c_str() + slash);
      break;
    }
  }
}
"""

CMAKE_PROJECT = """\
cmake_minimum_required(VERSION 3.20)
project(consumer LANGUAGES CXX)
set(CMAKE_CXX_STANDARD 20)
find_package(nbdpp 0.1 CONFIG REQUIRED)
add_executable(consumer consumer.cpp)
target_link_libraries(consumer PRIVATE nbdpp::nbd)
"""

def man_page_blocks(prefix, name="nbd-rust.3"):
    """The installed page's verbatim (.nf) blocks as plain text, and the page's path, so that a
    test follows what the page tells a user to write literally."""
    page = next(iter(glob.glob(os.path.join(prefix, "**", "man3", name), recursive=True)), None)
    if page is None:
        raise Failure(f"{name} is not installed under {prefix}")
    blocks, block = [], None
    with open(page) as f:
        for line in f:
            line = line.rstrip("\n")
            if line == ".nf":
                block = []
            elif line == ".fi" and block is not None:
                blocks.append("\n".join(block) + "\n")
                block = None
            elif block is not None:
                block.append(line.replace("\\-", "-").replace("\\e", "\\"))
    return blocks, page


def man_page_recipe(prefix):
    """The Cargo.toml dependency and build.rs that nbd-rust(3) tells a user to write, taken
    from the installed page's SYNOPSIS (.nf blocks)."""
    blocks, page = man_page_blocks(prefix)
    cargo = next((b for b in blocks if b.startswith("[dependencies]")), None)
    build = next((b for b in blocks if b.startswith("fn main()") and "DEP_NBD_LIBDIR" in b), None)
    if cargo is None or build is None:
        raise Failure("nbd-rust(3): no [dependencies] or build.rs block in its .nf blocks")
    cargo = cargo.replace("PREFIX", prefix)
    return ('[package]\nname = "consumer"\nversion = "0.1.0"\nedition = "2021"\n\n' + cargo,
            build)


RUST_MAIN = r"""
fn main() {
    let uri = std::env::args().nth(1).expect("usage: consumer URI");
    let h = nbd::Handle::new().unwrap();
    h.connect_uri(&uri).unwrap();
    let out: Vec<u8> = (0..4096u32).map(|i| (i * 3 + 11) as u8).collect();
    h.pwrite(&out, 16384, None).unwrap();
    let mut back = vec![0u8; 4096];
    h.pread(&mut back, 16384, None).unwrap();
    println!("package={}", h.get_package_name());
    println!("roundtrip={}", if back == out { "ok" } else { "differs" });
    let maps = std::fs::read_to_string("/proc/self/maps").unwrap();
    if let Some(line) = maps.lines().find(|l| l.contains("/libnbd.so")) {
        println!("library={}", &line[line.find('/').unwrap()..]);
    }
}
"""


class Failure(Exception):
    pass


def run(cmd, env, cwd=None, timeout=300):
    r = subprocess.run(cmd, env=env, cwd=cwd, capture_output=True, text=True, timeout=timeout)
    if r.returncode != 0:
        raise Failure(f"{' '.join(cmd)} failed ({r.returncode}):\n{r.stdout}{r.stderr}")
    return r.stdout


def clean_env(**extra):
    """The test's environment without anything that could lead a program to a library."""
    env = {k: v for k, v in os.environ.items()
           if k not in ("LD_LIBRARY_PATH", "LD_PRELOAD", "LIBRARY_PATH", "PKG_CONFIG_PATH",
                        "CMAKE_PREFIX_PATH", "NBDPP_LIB_DIR", "NBDPP_GENERATED_DIR", "RUSTFLAGS",
                        "CARGO_TARGET_DIR", "CARGO_HOME", "CARGO_NET_OFFLINE")}
    env.update(extra)
    return env


def check_output(what, output, prefix):
    """The package is nbdpp, the data came back, and the library was loaded from PREFIX."""
    fields = dict(line.split("=", 1) for line in output.splitlines() if "=" in line)
    library = fields.get("library", "")
    if fields.get("package") != "nbdpp":
        raise Failure(f"{what}: package {fields.get('package')!r}, expected 'nbdpp'\n{output}")
    if fields.get("roundtrip") != "ok":
        raise Failure(f"{what}: the data read back differs from the data written\n{output}")
    if not os.path.realpath(library).startswith(os.path.realpath(prefix) + os.sep):
        raise Failure(f"{what}: loaded {library!r}, not the library under {prefix}")
    print(f"ok: {what}: package nbdpp, round trip ok, loaded {library}")


class Nbdkit:
    """nbdkit's memory plugin on a Unix socket of SCRATCH, stopped by PID."""

    def __init__(self, scratch):
        self.sock = os.path.join(scratch, "nbdkit.sock")
        self.pidfile = pidfile = os.path.join(scratch, "nbdkit.pid")
        self.proc = subprocess.Popen(["nbdkit", "-f", "--exit-with-parent", "-P", pidfile,
                                      "-U", self.sock, "memory", "1M"])
        deadline = time.monotonic() + 20
        while not (os.path.exists(pidfile) and os.path.getsize(pidfile) > 0):
            if self.proc.poll() is not None or time.monotonic() > deadline:
                self.stop()
                raise Failure("nbdkit did not start")
            time.sleep(0.02)
        self.uri = f"nbd+unix:///?socket={self.sock}"

    def stop(self):
        if self.proc.poll() is None:
            self.proc.terminate()
        self.proc.wait()
        # nbdkit leaves both behind after SIGTERM.
        for path in (self.sock, self.pidfile):
            if os.path.exists(path):
                os.unlink(path)


def c_with_pkg_config(prefix, libdir, scratch, server):
    work = os.path.join(scratch, "c")
    os.makedirs(work)
    with open(os.path.join(work, "consumer.c"), "w") as f:
        f.write(C_PROGRAM)
    env = clean_env(PKG_CONFIG_PATH=os.path.join(prefix, libdir, "pkgconfig"))
    version = run(["pkg-config", "--modversion", "nbdpp"], env).strip()
    flags = run(["pkg-config", "--cflags", "--libs", "nbdpp"], env).split()
    rpath = run(["pkg-config", "--variable=libdir", "nbdpp"], env).strip()
    cc = os.environ.get("CC", "cc")
    run([cc, "-std=c99", "-o", "consumer", "consumer.c", *flags, f"-Wl,-rpath,{rpath}"], env,
        cwd=work)
    out = run([os.path.join(work, "consumer"), server.uri], env)
    check_output(f"C program via pkg-config (nbdpp {version})", out, prefix)


def cxx_with_cmake(prefix, scratch, server, cmake):
    work = os.path.join(scratch, "cxx")
    os.makedirs(work)
    with open(os.path.join(work, "consumer.cpp"), "w") as f:
        f.write(CXX_PROGRAM)
    with open(os.path.join(work, "CMakeLists.txt"), "w") as f:
        f.write(CMAKE_PROJECT)
    env = clean_env(CMAKE_PREFIX_PATH=prefix)
    build = os.path.join(work, "build")
    run([cmake, "-S", work, "-B", build], env)
    run([cmake, "--build", build], env)
    out = run([os.path.join(build, "consumer"), server.uri], env)
    check_output("C++ program via find_package(nbdpp)", out, prefix)


def loaded_library(program, prefix):
    """The dynamic linker's own answer to which libnbd.so.0 program gets; it must be prefix's."""
    trace = run([program], clean_env(LD_TRACE_LOADED_OBJECTS="1"))
    line = next((l for l in trace.splitlines() if "libnbd.so.0" in l), "")
    path = line.split("=>")[-1].split("(")[0].strip()
    if not os.path.realpath(path).startswith(os.path.realpath(prefix) + os.sep):
        raise Failure(f"{program} resolves libnbd.so.0 to {path!r}, not under {prefix}:\n{trace}")
    return path


def installed_tool(prefix, server):
    tool = os.path.join(prefix, "bin", "nbdpp")
    env = clean_env()
    out = run([tool, "--version"], env)
    if not out.startswith("nbdpp "):
        raise Failure(f"{tool} --version: {out!r}, expected 'nbdpp ...'")
    path = loaded_library(tool, prefix)
    run([tool, "info", server.uri], env)
    print(f"ok: installed {tool}: {out.strip()}, loads {path}, `nbdpp info` works")


def installed_examples(prefix, server):
    """The example programs are installed under libexec with their sources in the docs."""
    examples = os.path.join(prefix, "libexec", "nbdpp", "examples")
    info = os.path.join(examples, "nbd-info")
    path = loaded_library(info, prefix)
    out = run([info, server.uri], clean_env())
    if "library: nbdpp " not in out:
        raise Failure(f"{info}: expected 'library: nbdpp ...' in:\n{out}")
    for name in ("nbd-info", "concurrent-writer"):
        for f in (os.path.join(examples, name),
                  os.path.join(prefix, "share", "doc", "nbdpp", "examples", name + ".c")):
            if not os.path.isfile(f):
                raise Failure(f"{f} is not installed")
    print(f"ok: installed examples in {examples} load {path}, nbd-info works")


def rust_crate(prefix, libdir, scratch, server, cargo, foreign_lib_dir):
    crate = os.path.join(prefix, "share", "nbdpp", "rust", "nbd")
    work = os.path.join(scratch, "rust")
    os.makedirs(os.path.join(work, "src"))
    cargo_toml, build_rs = man_page_recipe(prefix)
    if crate not in cargo_toml:
        raise Failure(f"nbd-rust(3)'s Cargo.toml line does not name {crate}:\n{cargo_toml}")
    with open(os.path.join(work, "Cargo.toml"), "w") as f:
        f.write(cargo_toml)
    with open(os.path.join(work, "build.rs"), "w") as f:
        f.write(build_rs)
    with open(os.path.join(work, "src", "main.rs"), "w") as f:
        f.write(RUST_MAIN)
    home = os.path.join(scratch, "cargo-home")  # empty: nothing cached, nothing fetched
    os.makedirs(home)
    env = clean_env(CARGO_HOME=home, CARGO_TARGET_DIR=os.path.join(work, "target"),
                    PKG_CONFIG_PATH=os.path.join(prefix, libdir, "pkgconfig"))
    run([cargo, "build", "--offline"], env, cwd=work, timeout=600)
    out = run([os.path.join(work, "target", "debug", "consumer"), server.uri], clean_env())
    check_output("Rust program depending on the installed crate", out, prefix)

    # A libnbd.so that is not ours (Debian's) is refused when the crate is built.
    foreign = os.path.join(foreign_lib_dir, "libnbd.so")
    if not os.path.exists(foreign):
        fake = os.path.join(scratch, "foreign")
        os.makedirs(fake)
        target = os.path.join(foreign_lib_dir, "libnbd.so.0")
        if not os.path.exists(target):
            print(f"SKIP: the refusal check: no libnbd.so.0 in {foreign_lib_dir}")
            return
        os.symlink(target, os.path.join(fake, "libnbd.so"))
        foreign = os.path.join(fake, "libnbd.so")
    env["NBDPP_LIB_DIR"] = os.path.dirname(foreign)
    r = subprocess.run([cargo, "build", "--offline"], env=env, cwd=work, capture_output=True,
                       text=True, timeout=600)
    text = r.stdout + r.stderr
    expect = [f"{os.path.realpath(os.path.dirname(foreign))}/libnbd.so is not nbdpp's libnbd.so",
              "defines no NBDPP_1.0 symbol version", "NBDPP_LIB_DIR=PREFIX/lib",
              "LIBNBD_1.0"]  # the versions it does define: the ELF was read
    missing = [e for e in expect if e not in text]
    if r.returncode == 0 or missing:
        raise Failure(f"cargo build with NBDPP_LIB_DIR={env['NBDPP_LIB_DIR']}: rc {r.returncode}, "
                      f"message lacks {missing}:\n{text}")
    print(f"ok: cargo build refuses {foreign}")


def with_install(build_dir, scratch, cmake, body):
    """Installs BUILD_DIR into SCRATCH/prefix (SCRATCH emptied first), starts nbdkit and runs
    body(prefix, scratch, server).  Returns the exit status: 1 after a failure, said on stdout."""
    scratch = os.path.abspath(scratch)
    shutil.rmtree(scratch, ignore_errors=True)
    prefix = os.path.join(scratch, "prefix")
    os.makedirs(prefix)
    server = None
    try:
        run([cmake, "--install", build_dir, "--prefix", prefix], clean_env())
        server = Nbdkit(scratch)
        body(prefix, scratch, server)
    except (Failure, subprocess.TimeoutExpired) as e:
        print(f"FAIL: {e}")
        return 1
    finally:
        if server:
            server.stop()
    return 0


def install_arguments(description):
    """The arguments of the tests on an install: BUILD_DIR SCRATCH_DIR LIBDIR, --cmake, --cargo."""
    ap = argparse.ArgumentParser(description=description)
    ap.add_argument("build_dir")
    ap.add_argument("scratch")
    ap.add_argument("libdir", help="CMAKE_INSTALL_LIBDIR, relative to the prefix")
    ap.add_argument("--cmake", default="cmake")
    ap.add_argument("--cargo", default="")
    return ap


def main(argv=None):
    ap = install_arguments(__doc__)
    ap.add_argument("--foreign-lib-dir", default="/usr/lib/x86_64-linux-gnu")
    args = ap.parse_args(argv)
    for tool in ("nbdkit", "pkg-config", os.environ.get("CC", "cc")):
        if not shutil.which(tool):
            print(f"SKIP: {tool} is not installed")
            return SKIP
    cargo = args.cargo if args.cargo and os.access(args.cargo, os.X_OK) else shutil.which("cargo")

    def consumers(prefix, scratch, server):
        c_with_pkg_config(prefix, args.libdir, scratch, server)
        cxx_with_cmake(prefix, scratch, server, args.cmake)
        installed_tool(prefix, server)
        installed_examples(prefix, server)
        if cargo:
            rust_crate(prefix, args.libdir, scratch, server, cargo, args.foreign_lib_dir)
        else:
            print("SKIP: the Rust part: cargo not found")

    return with_install(args.build_dir, args.scratch, args.cmake, consumers)


if __name__ == "__main__":
    sys.exit(main())
