// build.rs: finds the generated sources of the crate and links it with libnbd.so.0.
//
// NBDPP_GENERATED_DIR  the rust/ directory the generator wrote (the build tree's
//                      generated/rust); unset, the generator is run here from the source tree,
//                      which needs python3 with jinja2 and yaml.
// NBDPP_LIB_DIR        where libnbd.so.0 is; it is also put in the binaries' rpath.  Unset, the
//                      linker's default search path is used.
use std::env;
use std::path::{Path, PathBuf};
use std::process::Command;

const GENERATED: [&str; 2] = ["sys.rs", "api.rs"];

fn main() {
    println!("cargo:rerun-if-env-changed=NBDPP_GENERATED_DIR");
    println!("cargo:rerun-if-env-changed=NBDPP_LIB_DIR");
    let dir = match env::var_os("NBDPP_GENERATED_DIR") {
        Some(dir) => PathBuf::from(dir),
        None => generate(),
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

    if let Some(lib) = env::var_os("NBDPP_LIB_DIR") {
        let lib = Path::new(&lib).canonicalize().expect("NBDPP_LIB_DIR must exist");
        println!("cargo:rustc-link-search=native={}", lib.display());
        // Tests and examples then find our libnbd.so.0 without LD_LIBRARY_PATH.
        println!("cargo:rustc-link-arg=-Wl,-rpath,{}", lib.display());
    }
    println!("cargo:rustc-link-lib=dylib=nbd");
}

// Runs generator/generate.py on api.yaml into OUT_DIR, for a cargo build outside CMake.
fn generate() -> PathBuf {
    let manifest = PathBuf::from(env::var_os("CARGO_MANIFEST_DIR").expect("CARGO_MANIFEST_DIR"));
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
