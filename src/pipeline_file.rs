//! Finding and loading the pipeline file: `--pipeline`, then `$ANB_PIPELINE`, then
//! `pipeline.toml` in the working directory, then the built-in showcase pipeline.

use std::path::{Path, PathBuf};
use std::sync::Arc;

use anb_pipeline::{overrides_from, BuildContext, ConfigError, InputLimits, Pipeline, Problem};

/// The showcase pipeline compiled into the binary.
pub const BUILT_IN: &str = include_str!("../pipeline.toml");

pub struct Loaded {
    pub pipeline: Arc<Pipeline>,
    pub source_name: String,
}

/// The chosen pipeline file's text, its name for messages, and its folder (for relative paths).
fn read(explicit: Option<&Path>) -> Result<(String, String, Option<PathBuf>), ConfigError> {
    let from_env = std::env::var_os("ANB_PIPELINE").map(PathBuf::from);
    let chosen = explicit.map(Path::to_path_buf).or(from_env);
    let unreadable = |name: String, e: std::io::Error| ConfigError {
        source_name: name,
        problems: vec![Problem::file(format!("cannot read the file: {e}"))],
    };
    match chosen {
        Some(path) => match std::fs::read_to_string(&path) {
            Ok(text) => {
                Ok((text, path.display().to_string(), Some(path.parent().map(Path::to_path_buf).unwrap_or_default())))
            }
            Err(e) => Err(unreadable(path.display().to_string(), e)),
        },
        None if Path::new("pipeline.toml").exists() => match std::fs::read_to_string("pipeline.toml") {
            Ok(text) => Ok((text, "pipeline.toml".to_owned(), None)),
            Err(e) => Err(unreadable("pipeline.toml".into(), e)),
        },
        None => Ok((BUILT_IN.to_owned(), "(built-in pipeline)".to_owned(), None)),
    }
}

pub fn load(explicit: Option<&Path>, ctx: &BuildContext) -> Result<Loaded, ConfigError> {
    let (text, source_name, base_dir) = read(explicit)?;
    let mut ctx = ctx.clone();
    if base_dir.is_some() {
        ctx.base_dir = base_dir;
    }
    let overrides = overrides_from(std::env::vars());
    let pipeline = Pipeline::load(&text, &source_name, &anb_stages::registry(), &overrides, &ctx)?;
    Ok(Loaded { pipeline: Arc::new(pipeline), source_name })
}

/// The media limits of the chosen pipeline file, without building it (see
/// [`anb_pipeline::input_limits`]).
pub fn input_limits(explicit: Option<&Path>) -> Result<InputLimits, ConfigError> {
    let (text, source_name, _) = read(explicit)?;
    anb_pipeline::input_limits(&text, &source_name, &anb_stages::registry(), &overrides_from(std::env::vars()))
}
