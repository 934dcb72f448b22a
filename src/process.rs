//! `anb process INPUT OUTPUT`: one file through the worker's code path, with a progress bar on
//! a terminal and a summary at the end.

use std::path::PathBuf;
use std::time::Duration;

use anb_core::blob::BlobReader;
use anb_pipeline::{BuildContext, CancelToken, ErrorCode, PipelineError, RunOptions, RunReport};
use clap::Args;
use indicatif::{ProgressBar, ProgressStyle};

use crate::exit::{Exit, Outcome};
use crate::locations::{self, Location};
use crate::pipeline_file;

#[derive(Debug, Args)]
pub struct ProcessArgs {
    /// The input video: a path or s3://BUCKET/KEY (AWS settings from the standard AWS_* variables).
    #[arg(value_parser = Location::parse)]
    pub input: Location,
    /// Where to write the MP4: a path (written under a temporary name, renamed when complete) or
    /// s3://BUCKET/KEY (a multipart upload, completed only when the whole output is there).
    #[arg(value_parser = Location::parse)]
    pub output: Location,
    /// The pipeline file; default `$ANB_PIPELINE`, then `pipeline.toml`, then the built-in one.
    #[arg(long)]
    pub pipeline: Option<PathBuf>,
    /// Abort when nothing moves for this long.
    #[arg(long, env = "ANB_STALL_TIMEOUT_SECS", default_value_t = 60)]
    pub stall_timeout_secs: u64,
    /// CPU threads for decoding, scaling and encoding; default: the CPUs this process may use.
    #[arg(long)]
    pub threads: Option<usize>,
    /// Print the summary (or the error) as one JSON object on stdout.
    #[arg(long)]
    pub json: bool,
}

pub fn run(args: ProcessArgs) -> Outcome {
    let mut ctx = BuildContext::default();
    if let Some(t) = args.threads {
        ctx.threads = t.max(1);
    }
    let loaded = pipeline_file::load(args.pipeline.as_deref(), &ctx).map_err(|e| Exit::Config(e.to_string()))?;
    let cancel = CancelToken::default();
    cancel_on_signals(cancel.clone())?;
    let pipeline = &loaded.pipeline;
    let s3_options = anb_worker::adapters::s3_options(pipeline.source_options(), pipeline.sink_options());
    let endpoints = match locations::open(&args.input, &args.output, s3_options) {
        Ok(endpoints) => endpoints,
        Err(e) => return Err(fail(&args, &e)),
    };
    // The runtime (present for S3) serves the endpoints until the run is over.
    let locations::Endpoints { source, sink, s3_reader, runtime: _runtime } = endpoints;

    let bar = progress_bar();
    let bar_for_run = bar.clone();
    let opts = RunOptions {
        ctx,
        cancel,
        stall_timeout: Duration::from_secs(args.stall_timeout_secs),
        on_progress: Some(Box::new(move |p: &anb_pipeline::Progress| {
            if let Some(f) = p.fraction() {
                bar_for_run.set_position((f * 1000.0) as u64);
            }
            bar_for_run.set_message(format!(
                "{:.1}/{} s, read {:.1} MB",
                p.position.as_secs_f64(),
                p.expected.map_or("?".into(), |e| format!("{:.1}", e.as_secs_f64())),
                p.bytes_read as f64 / 1e6
            ));
        })),
        ..RunOptions::default()
    };
    let result = loaded.pipeline.run_blocking(source, sink, opts);
    bar.finish_and_clear();
    match result {
        Ok(report) => {
            let side_outputs = match write_side_outputs(&args.output, &report) {
                Ok(written) => written,
                Err(e) => {
                    return Err(fail(
                        &args,
                        &PipelineError::new(ErrorCode::SinkFailed, format!("writing a side output: {e}")),
                    ))
                }
            };
            print_summary(&args, &report, s3_reader.as_deref(), &side_outputs);
            Ok(())
        }
        Err(e) => Err(fail(&args, &e)),
    }
}

/// Each side output (a poster) beside a local output, as `OUT-STEM.NAME.EXT`; returns what was
/// written. Beside an S3 output they are not written (the platform's worker stores those).
fn write_side_outputs(output: &Location, report: &RunReport) -> std::io::Result<Vec<(String, PathBuf, usize)>> {
    let Location::File(path) = output else { return Ok(Vec::new()) };
    let stem = path.file_stem().map(|s| s.to_string_lossy().into_owned()).unwrap_or_else(|| "output".into());
    report
        .artifacts
        .iter()
        .map(|a| {
            let side = path.with_file_name(format!("{stem}.{}.{}", a.name, a.extension));
            std::fs::write(&side, &a.bytes)?;
            Ok((a.name.clone(), side, a.bytes.len()))
        })
        .collect()
}

/// Ctrl-C or SIGTERM cancels the run, so the partial output is removed before exiting. The
/// handlers are installed before this returns, so no signal slips through unhandled.
fn cancel_on_signals(cancel: CancelToken) -> std::io::Result<()> {
    use tokio::signal::unix::{signal, SignalKind};
    let rt = tokio::runtime::Builder::new_current_thread().enable_all().build()?;
    let (mut interrupt, mut terminate) = {
        let _guard = rt.enter();
        (signal(SignalKind::interrupt())?, signal(SignalKind::terminate())?)
    };
    std::thread::spawn(move || {
        rt.block_on(async {
            tokio::select! {
                _ = interrupt.recv() => {}
                _ = terminate.recv() => {}
            }
        });
        cancel.cancel();
    });
    Ok(())
}

fn progress_bar() -> ProgressBar {
    // indicatif draws nothing when stderr is not a terminal.
    let bar = ProgressBar::new(1000);
    bar.set_style(
        ProgressStyle::with_template("{spinner} [{bar:40}] {percent:>3}% {msg} ({elapsed})")
            .expect("valid template")
            .progress_chars("=> "),
    );
    bar.enable_steady_tick(Duration::from_millis(200));
    bar
}

/// Print to stdout, ignoring a closed pipe (`anb process ... | head` must not panic).
macro_rules! out {
    ($($arg:tt)*) => {{
        use std::io::Write;
        let _ = writeln!(std::io::stdout().lock(), $($arg)*);
    }};
}

fn print_summary(
    args: &ProcessArgs,
    r: &RunReport,
    s3_reader: Option<&dyn BlobReader>,
    side_outputs: &[(String, PathBuf, usize)],
) {
    let mb = |b: u64| b as f64 / 1e6;
    if args.json {
        let summary = serde_json::json!({
            "input": args.input.to_string(),
            "output": args.output.to_string(),
            "input_size": r.input_size,
            "input_duration_secs": r.input_duration.map(|d| d.as_secs_f64()),
            "output_duration_secs": r.output_duration.as_secs_f64(),
            "wall_secs": r.wall_time.as_secs_f64(),
            "realtime_factor": r.realtime_factor(),
            "bytes_read": r.bytes_read,
            "bytes_written": r.bytes_written,
            "s3_bytes_fetched": s3_reader.map(|reader| reader.bytes_fetched()),
            "side_outputs": side_outputs.iter().map(|(name, path, bytes)| serde_json::json!({
                "name": name, "path": path.display().to_string(), "bytes": bytes,
            })).collect::<Vec<_>>(),
        });
        out!("{summary}");
        return;
    }
    let input_secs = r.input_duration.map_or("?".into(), |d| format!("{:.2}", d.as_secs_f64()));
    out!("input   {} ({:.1} MB, {input_secs} s)", args.input, mb(r.input_size));
    out!("output  {} ({:.1} MB, {:.2} s)", args.output, mb(r.bytes_written), r.output_duration.as_secs_f64());
    out!("time    {:.2} s ({:.2}x realtime)", r.wall_time.as_secs_f64(), r.realtime_factor());
    out!(
        "read    {:.1} MB ({:.1}% of the input)",
        mb(r.bytes_read),
        100.0 * r.bytes_read as f64 / r.input_size.max(1) as f64
    );
    for (name, path, bytes) in side_outputs {
        out!("{name:<7} {} ({:.1} kB)", path.display(), *bytes as f64 / 1e3);
    }
    if let Some(reader) = s3_reader {
        let fetched = reader.bytes_fetched();
        out!(
            "fetched {:.1} MB from S3 ({:.1}% of the object)",
            mb(fetched),
            100.0 * fetched as f64 / r.input_size.max(1) as f64
        );
    }
}

/// The way out for a failed run; with `--json`, the error is also printed as JSON on stdout.
fn fail(args: &ProcessArgs, e: &PipelineError) -> Exit {
    let code = e.code();
    if args.json {
        out!("{}", serde_json::json!({ "error": { "code": code.as_str(), "message": e.message() } }));
    }
    let text = format!("error[{code}]: {}", e.message());
    if code == ErrorCode::Cancelled {
        Exit::Cancelled(text)
    } else if code == ErrorCode::InvalidPipeline {
        Exit::Config(text)
    } else if code.is_client_fault() {
        Exit::BadInput(text)
    } else {
        Exit::RunFailed(text)
    }
}
