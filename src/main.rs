//! `anb`: the one binary of ANB Video.

mod cli;
mod cpu;
mod dlq;
mod exit;
mod locations;
mod pipeline_file;
mod process;
mod serve;
mod web;
mod worker;

use std::process::ExitCode;

use clap::Parser;

fn main() -> ExitCode {
    tracing_subscriber::fmt()
        .with_env_filter(tracing_subscriber::EnvFilter::try_from_default_env().unwrap_or_else(|_| "info".into()))
        .with_writer(std::io::stderr)
        .init();
    let args = cli::Cli::parse();
    match cli::run(args) {
        Ok(()) => ExitCode::SUCCESS,
        Err(exit) => {
            eprintln!("{exit}");
            exit.status()
        }
    }
}
