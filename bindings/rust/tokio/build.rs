// build.rs: finds the generated half of the crate (async_api.rs) and puts nbdpp's library
// directory in the run path of the crate's own tests and examples.
//
// The file is looked for in the crate's generated/ directory (the installed copy,
// PREFIX/share/nbdpp/rust/nbd-tokio, has one), else where the nbd crate found its own generated
// sources (DEP_NBD_GENERATED: NBDPP_GENERATED_DIR, or what its build script generated).
use std::env;
use std::path::PathBuf;

const GENERATED: &str = "async_api.rs";

fn main() {
    let manifest = PathBuf::from(env::var_os("CARGO_MANIFEST_DIR").expect("CARGO_MANIFEST_DIR"));
    let own = manifest.join("generated");
    let dir = if own.join(GENERATED).is_file() {
        own
    } else {
        PathBuf::from(env::var_os("DEP_NBD_GENERATED").expect("DEP_NBD_GENERATED (nbd crate)"))
    };
    let file = dir.join(GENERATED);
    if !file.is_file() {
        panic!(
            "{} is missing: the generator writes it beside the nbd crate's sys.rs and api.rs \
             (BUILD/generated/rust)",
            file.display()
        );
    }
    println!("cargo:rerun-if-changed={}", file.display());
    println!("cargo:rustc-env=NBD_TOKIO_GENERATED={}", file.display());
    // DEP_NBD_LIBDIR: where the nbd crate found libnbd.so (see nbd-rust(3)).
    if let Some(lib) = env::var_os("DEP_NBD_LIBDIR") {
        println!("cargo:rustc-link-arg=-Wl,-rpath,{}", PathBuf::from(lib).display());
    }
}
