//! Finding and loading the pipeline file: `--pipeline`, then `$ANB_PIPELINE`, then
//! `pipeline.toml` in the working directory, then the built-in showcase pipeline.

use std::path::Path;
use std::sync::Arc;

use anb_pipeline::{overrides_from, BuildContext, ConfigError, Pipeline, Problem};

/// The showcase pipeline compiled into the binary.
pub const BUILT_IN: &str = include_str!("../pipeline.toml");

pub struct Loaded {
    pub pipeline: Arc<Pipeline>,
    pub source_name: String,
}

pub fn load(explicit: Option<&Path>, ctx: &BuildContext) -> Result<Loaded, ConfigError> {
    let from_env = std::env::var_os("ANB_PIPELINE").map(std::path::PathBuf::from);
    let chosen = explicit.map(Path::to_path_buf).or(from_env);
    let mut ctx = ctx.clone();
    let (text, source_name) = match chosen {
        Some(path) => match std::fs::read_to_string(&path) {
            Ok(text) => {
                ctx.base_dir = Some(path.parent().map(Path::to_path_buf).unwrap_or_default());
                (text, path.display().to_string())
            }
            Err(e) => {
                return Err(ConfigError {
                    source_name: path.display().to_string(),
                    problems: vec![Problem::file(format!("cannot read the file: {e}"))],
                })
            }
        },
        None if Path::new("pipeline.toml").exists() => match std::fs::read_to_string("pipeline.toml") {
            Ok(text) => (text, "pipeline.toml".to_owned()),
            Err(e) => {
                return Err(ConfigError {
                    source_name: "pipeline.toml".into(),
                    problems: vec![Problem::file(format!("cannot read the file: {e}"))],
                })
            }
        },
        None => (BUILT_IN.to_owned(), "(built-in pipeline)".to_owned()),
    };
    let overrides = overrides_from(std::env::vars());
    let pipeline = Pipeline::load(&text, &source_name, &anb_stages::registry(), &overrides, &ctx)?;
    Ok(Loaded { pipeline: Arc::new(pipeline), source_name })
}
