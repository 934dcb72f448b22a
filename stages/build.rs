//! Compiles the libx264 shim of the `anbx264enc` element (csrc/x264enc.c).
fn main() {
    println!("cargo:rerun-if-changed=csrc/x264enc.c");
    let x264 = pkg_config::probe_library("x264")
        .unwrap_or_else(|e| panic!("libx264 development files are missing (make deps installs them): {e}"));
    let mut build = cc::Build::new();
    for path in x264.include_paths {
        build.include(path);
    }
    build.file("csrc/x264enc.c").warnings(true).compile("anbx264enc");
}
