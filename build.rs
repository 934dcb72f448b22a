//! Link the `anb` binary with packed relative relocations (DT_RELR, glibc ≥ 2.36: Debian 12).
//! Its 50,000 relative relocations then take a few kilobytes instead of a 1.2 MB table that the
//! loader reads, and so keeps resident, in every process (docs/capacity.md, "Where a job's
//! memory goes").
fn main() {
    println!("cargo::rustc-link-arg-bins=-Wl,-z,pack-relative-relocs");
}
