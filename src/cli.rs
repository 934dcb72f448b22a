//! Command-line interface.

use std::path::PathBuf;

use clap::{Parser, Subcommand};

use crate::exit::{Exit, Outcome};
use crate::{pipeline_file, process};

#[derive(Debug, Parser)]
#[command(name = "anb", version, about = "ANB Video: upload, process and rank basketball clips")]
pub struct Cli {
    #[command(subcommand)]
    pub command: Command,
}

#[derive(Debug, Subcommand)]
pub enum Command {
    /// Run one file through the pipeline, exactly as a worker would.
    Process(process::ProcessArgs),
    /// Inspect a pipeline file.
    #[command(subcommand)]
    Pipeline(PipelineCommand),
    /// Web and worker in one process, on embedded defaults (SQLite, data/blobs, embedded queue).
    Serve,
    /// Serve the HTTP API (settings from anb.toml and ANB_*; ANB_SECRET_KEY required).
    Web,
    /// Consume the job queue and process videos.
    Worker,
    /// The dead-letter queue.
    #[command(subcommand)]
    Dlq(DlqCommand),
    /// Apply the database migrations that are not applied yet (ANB_DATABASE_URL), then exit.
    Migrate,
    /// Print the effective settings as JSON (secrets redacted), or every problem (exit code 2).
    Settings,
}

#[derive(Debug, Subcommand)]
pub enum PipelineCommand {
    /// Print the resolved stages and the GStreamer graph, or every error (exit code 2).
    Check {
        /// The pipeline file; default `$ANB_PIPELINE`, then `pipeline.toml`, then the built-in one.
        file: Option<PathBuf>,
    },
}

#[derive(Debug, Subcommand)]
pub enum DlqCommand {
    /// Move every dead-letter message back to the job queue.
    Redrive,
}

pub fn run(cli: Cli) -> Outcome {
    // The commands that run pipelines: before any thread starts, so every thread inherits it.
    if matches!(cli.command, Command::Process(_) | Command::Worker | Command::Serve) {
        crate::cpu::pin_to_quota();
    }
    // The services keep what they write to themselves: the database file, uploads and outputs
    // in a storage folder, the key `anb serve` makes (0600 files, 0700 folders).
    if matches!(cli.command, Command::Web | Command::Worker | Command::Serve | Command::Migrate) {
        // SAFETY: umask only sets the process's file-creation mask; it cannot fail.
        unsafe { libc::umask(0o077) };
    }
    match cli.command {
        Command::Process(args) => process::run(args),
        Command::Pipeline(PipelineCommand::Check { file }) => check(file),
        Command::Migrate => migrate(),
        Command::Settings => show_settings(),
        Command::Web => crate::web::run(),
        Command::Serve => crate::serve::run(),
        Command::Worker => crate::worker::run(),
        Command::Dlq(DlqCommand::Redrive) => crate::dlq::redrive(),
    }
}

/// Settings from defaults, `anb.toml` and `ANB_*`; invalid ones are printed, each named.
pub fn settings() -> Result<anb_core::Settings, Exit> {
    anb_core::Settings::load().map_err(|e| Exit::Config(e.to_string()))
}

/// What a task really sees, after anb.toml and ANB_* are applied: for operators checking a
/// deployment, and for the test that ties the CloudFormation template to the binary.
fn show_settings() -> Outcome {
    let settings = settings()?;
    println!("{}", serde_json::to_string_pretty(&settings.redacted()).map_err(anyhow::Error::from)?);
    Ok(())
}

fn migrate() -> Outcome {
    let settings = settings()?;
    let rt = tokio::runtime::Builder::new_current_thread().enable_all().build()?;
    rt.block_on(async {
        let db = anb_core::db::Db::connect_with_password(&settings.database_url, settings.database_password.as_deref())
            .await?;
        db.migrate().await?;
        println!("migrations applied ({})", db.backend());
        db.close().await;
        Ok::<_, anyhow::Error>(())
    })?;
    Ok(())
}

fn check(file: Option<PathBuf>) -> Outcome {
    let ctx = anb_pipeline::BuildContext::default();
    let loaded = pipeline_file::load(file.as_deref(), &ctx).map_err(|e| Exit::Config(e.to_string()))?;
    println!("pipeline: {}", loaded.source_name);
    for (i, s) in loaded.pipeline.stages().iter().enumerate() {
        println!("  {i}: {} {:?}", s.type_name, s.stage);
    }
    println!("threads: {}", ctx.threads);
    print!("{}", loaded.pipeline.describe_graph(&ctx).map_err(anyhow::Error::from)?);
    Ok(())
}
