// build.rs: finds the generated part of the crate (libnbd.rs), which the generator writes beside
// the nbd crate's sources and the nbd crate's build script publishes, and gives this crate's own
// tests and examples the run path of nbdpp's libnbd.so.0.
use std::env;
use std::path::Path;

fn main() {
    // DEP_NBD_*: what the build script of the nbd crate (links = "nbd") published.
    let generated = env::var("DEP_NBD_GENERATED").expect("DEP_NBD_GENERATED from the nbd crate");
    let file = Path::new(&generated).join("libnbd.rs");
    if !file.is_file() {
        panic!(
            "{} is missing: the nbd crate's generated sources predate the libnbd crate; \
             regenerate them (generator/generate.py API.YAML OUT --only rust)",
            file.display()
        );
    }
    println!("cargo:rerun-if-changed={}", file.display());
    println!("cargo:rustc-env=NBDPP_LIBNBD_RS={}", file.display());
    let libdir = env::var("DEP_NBD_LIBDIR").expect("DEP_NBD_LIBDIR from the nbd crate");
    println!("cargo:rustc-link-arg=-Wl,-rpath,{libdir}");
}
