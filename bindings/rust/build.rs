// build.rs: finds the generated sources of the crate and links it with nbdpp's libnbd.so.0.
//
// NBDPP_GENERATED_DIR  the rust/ directory the generator wrote (the build tree's
//                      generated/rust; it holds libnbd.rs for the libnbd crate as well).  Unset: the crate's own generated/ directory, which the
//                      installed copy (PREFIX/share/nbdpp/rust/nbd) has; else the generator is
//                      run here from the source tree, which needs python3 with jinja2 and yaml.
// NBDPP_LIB_DIR        the directory of nbdpp's libnbd.so.  Unset: `pkg-config --variable=libdir
//                      nbdpp` (PKG_CONFIG_PATH=PREFIX/lib/pkgconfig for a prefix of its own).
//
// The libnbd.so found must define the NBDPP_1.0 symbol version: a system libnbd (Debian's
// libnbd-dev) has the same file name but not our calls, and is refused here rather than at run
// time.  The directory is put in the rpath of this crate's tests and examples, and published to
// dependents' build scripts as DEP_NBD_LIBDIR, for their own binaries' rpath (see nbd-rust(3)).
use std::env;
use std::fs;
use std::path::{Path, PathBuf};
use std::process::Command;

const GENERATED: [&str; 2] = ["sys.rs", "api.rs"];
const OUR_NODE: &str = "NBDPP_1.0";

fn main() {
    println!("cargo:rerun-if-env-changed=NBDPP_GENERATED_DIR");
    println!("cargo:rerun-if-env-changed=NBDPP_LIB_DIR");
    println!("cargo:rerun-if-env-changed=PKG_CONFIG_PATH");
    let manifest = PathBuf::from(env::var_os("CARGO_MANIFEST_DIR").expect("CARGO_MANIFEST_DIR"));
    let dir = match env::var_os("NBDPP_GENERATED_DIR") {
        Some(dir) => PathBuf::from(dir),
        None if manifest.join("generated").join(GENERATED[0]).is_file() => {
            manifest.join("generated")
        }
        None => generate(&manifest),
    };
    for name in GENERATED {
        let file = dir.join(name);
        if !file.is_file() {
            panic!(
                "{} is missing: point NBDPP_GENERATED_DIR at the generator's rust/ output \
                    (BUILD/generated/rust)",
                file.display()
            );
        }
        println!("cargo:rerun-if-changed={}", file.display());
    }
    let dir = dir.canonicalize().expect("canonical path of the generated directory");
    println!("cargo:rustc-env=NBDPP_RUST_GENERATED={}", dir.display());
    // DEP_NBD_GENERATED in a dependent's build script: the generated parts of nbd-tokio
    // (async_api.rs) and of the libnbd crate (libnbd.rs), which the generator writes beside
    // sys.rs and api.rs.
    println!("cargo:generated={}", dir.display());

    let lib = lib_dir();
    let so = lib.join("libnbd.so");
    println!("cargo:rerun-if-changed={}", so.display());
    check_ours(&so);
    println!("cargo:rustc-link-search=native={}", lib.display());
    // Tests and examples then find our libnbd.so.0 without LD_LIBRARY_PATH.
    println!("cargo:rustc-link-arg=-Wl,-rpath,{}", lib.display());
    // DEP_NBD_LIBDIR in the build script of a crate depending on this one (links = "nbd").
    println!("cargo:libdir={}", lib.display());
    println!("cargo:rustc-link-lib=dylib=nbd");
}

// The directory of our libnbd.so: NBDPP_LIB_DIR, else pkg-config's nbdpp.pc.  Never the linker's
// default directories, where a system libnbd would be found first.
fn lib_dir() -> PathBuf {
    let (dir, source) = match env::var_os("NBDPP_LIB_DIR") {
        Some(dir) => (PathBuf::from(dir), "NBDPP_LIB_DIR"),
        None => match Command::new("pkg-config").args(["--variable=libdir", "nbdpp"]).output() {
            Ok(out) if out.status.success() => {
                let text = String::from_utf8_lossy(&out.stdout).trim().to_string();
                (PathBuf::from(text), "pkg-config --variable=libdir nbdpp")
            }
            _ => panic!(
                "cannot find nbdpp's libnbd.so: set NBDPP_LIB_DIR=PREFIX/lib, or \
                 PKG_CONFIG_PATH=PREFIX/lib/pkgconfig so that `pkg-config --variable=libdir \
                 nbdpp` finds it (PREFIX is where nbdpp was installed)"
            ),
        },
    };
    match dir.canonicalize() {
        Ok(dir) => dir,
        Err(e) => panic!("{} (from {source}): {e}", dir.display()),
    }
}

// Panics unless `so` defines the NBDPP_1.0 symbol version.
fn check_ours(so: &Path) {
    let bytes = match fs::read(so) {
        Ok(bytes) => bytes,
        Err(e) => panic!("{}: {e}; is nbdpp installed there?", so.display()),
    };
    match version_definitions(&bytes) {
        Some(nodes) if nodes.iter().any(|n| n == OUR_NODE) => {}
        found => panic!(
            "{} is not nbdpp's libnbd.so: it defines no {OUR_NODE} symbol version (found: {}). \
             Another libnbd (such as the system's) is not a substitute; point at nbdpp's with \
             NBDPP_LIB_DIR=PREFIX/lib or PKG_CONFIG_PATH=PREFIX/lib/pkgconfig",
            so.display(),
            found.map_or("not an ELF file with version definitions".into(), |n| n.join(" "))
        ),
    }
}

// The names of the version definitions (.gnu.version_d) of an ELF shared object, or None if the
// file is not one this reads (ELF32/ELF64, either byte order).
fn version_definitions(f: &[u8]) -> Option<Vec<String>> {
    const SHT_GNU_VERDEF: u32 = 0x6fff_fffd;
    if f.get(..4)? != b"\x7fELF" {
        return None;
    }
    let wide = match f.get(4)? {
        1 => false,
        2 => true,
        _ => return None,
    };
    let big = match f.get(5)? {
        1 => false,
        2 => true,
        _ => return None,
    };
    let uint = |at: usize, len: usize| -> Option<u64> {
        let b = f.get(at..at.checked_add(len)?)?;
        let fold = |acc: u64, x: &u8| (acc << 8) | u64::from(*x);
        Some(if big { b.iter().fold(0, fold) } else { b.iter().rev().fold(0, fold) })
    };
    let word = |at: usize| uint(at, if wide { 8 } else { 4 }).map(|v| v as usize);
    let (shoff, shentsize, shnum) = if wide {
        (word(0x28)?, uint(0x3a, 2)? as usize, uint(0x3c, 2)? as usize)
    } else {
        (word(0x20)?, uint(0x2e, 2)? as usize, uint(0x30, 2)? as usize)
    };
    // Section header fields: sh_type at 4, sh_link at 24 (ELF32) or 40 (ELF64), sh_offset at 16
    // or 24.
    let section = |i: usize| shoff.checked_add(i.checked_mul(shentsize)?);
    let sh_offset = |s: usize| word(s + if wide { 24 } else { 16 });
    let sh_link = |s: usize| uint(s + if wide { 40 } else { 24 }, 4).map(|v| v as usize);
    for i in 0..shnum {
        let s = section(i)?;
        if uint(s + 4, 4)? != u64::from(SHT_GNU_VERDEF) {
            continue;
        }
        let strtab = sh_offset(section(sh_link(s)?)?)?;
        let name = |off: usize| -> Option<String> {
            let start = strtab.checked_add(off)?;
            let len = f.get(start..)?.iter().position(|&c| c == 0)?;
            Some(String::from_utf8_lossy(&f[start..start + len]).into_owned())
        };
        // Elf_Verdef: vd_version(2) vd_flags(2) vd_ndx(2) vd_cnt(2) vd_hash(4) vd_aux(4)
        // vd_next(4); its first Elf_Verdaux: vda_name(4) vda_next(4) names the node.
        let mut names = Vec::new();
        let mut at = sh_offset(s)?;
        loop {
            let aux = at.checked_add(uint(at + 12, 4)? as usize)?;
            names.push(name(uint(aux, 4)? as usize)?);
            let next = uint(at + 16, 4)? as usize;
            if next == 0 || names.len() > 4096 {
                break;
            }
            at = at.checked_add(next)?;
        }
        return Some(names);
    }
    Some(Vec::new())
}

// Runs generator/generate.py on api.yaml into OUT_DIR, for a cargo build outside CMake.
fn generate(manifest: &Path) -> PathBuf {
    let root = manifest.join("../..");
    let out = PathBuf::from(env::var_os("OUT_DIR").expect("OUT_DIR")).join("generated");
    let spec = root.join("api.yaml");
    let status = Command::new(env::var_os("PYTHON").unwrap_or_else(|| "python3".into()))
        .arg(root.join("generator/generate.py"))
        .arg(&spec)
        .arg(&out)
        .args(["--only", "rust"])
        .env("PYTHONDONTWRITEBYTECODE", "1") // nothing written into the source tree
        .status()
        .expect("cannot run python3 (set NBDPP_GENERATED_DIR or PYTHON)");
    assert!(status.success(), "generator/generate.py failed");
    println!("cargo:rerun-if-changed={}", spec.display());
    println!("cargo:rerun-if-changed={}", root.join("generator").display());
    println!("cargo:rerun-if-env-changed=PYTHON");
    out.join("rust")
}
