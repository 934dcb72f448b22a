//! Compiles the libavcodec shim of the `anbh264dec` element (csrc/h264dec.c).
fn main() {
    println!("cargo:rerun-if-changed=csrc/h264dec.c");
    let mut build = cc::Build::new();
    for lib in ["libavcodec", "libavutil"] {
        let found = pkg_config::probe_library(lib)
            .unwrap_or_else(|e| panic!("{lib} development files are missing (make deps installs them): {e}"));
        for path in found.include_paths {
            build.include(path);
        }
    }
    build.file("csrc/h264dec.c").warnings(true).compile("anbh264dec");
}
