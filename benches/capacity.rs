//! `cargo bench --bench capacity`: the capacity benchmark (`benches/capacity.py`: throughput per
//! Fargate task size beside ffmpeg, and the autoscaling targets that follow) on the `anb` binary
//! cargo has just built with the bench profile. Options go after `--`, e.g.
//! `cargo bench --bench capacity -- --sizes 1,2 --latency-target-secs 120`.

use std::process::{Command, ExitCode};

fn main() -> ExitCode {
    // `cargo bench` passes `--bench`; without it this was started as a test (`cargo test
    // --benches`), and a ten-minute measurement is not a test.
    if !std::env::args().any(|a| a == "--bench") {
        println!("capacity: a benchmark; run it with `cargo bench --bench capacity`");
        return ExitCode::SUCCESS;
    }
    let args = std::env::args().skip(1).filter(|a| a != "--bench");
    let script = concat!(env!("CARGO_MANIFEST_DIR"), "/benches/capacity.py");
    // Debian's interpreter has python3-matplotlib (from `make bench`'s packages) for the charts.
    let python = if std::path::Path::new("/usr/bin/python3").exists() { "/usr/bin/python3" } else { "python3" };
    match Command::new(python).arg(script).arg("--anb").arg(env!("CARGO_BIN_EXE_anb")).args(args).status() {
        Ok(status) if status.success() => ExitCode::SUCCESS,
        Ok(_) => ExitCode::FAILURE,
        Err(e) => {
            eprintln!("could not run {script}: {e}");
            ExitCode::FAILURE
        }
    }
}
