//! Loading `pipeline.toml`: parse, apply environment overrides, build each stage from the
//! registry, validate every stage and the order, then dry-build the elements. All problems of a
//! file are collected and reported together.
//!
//! ```toml
//! [[stage]]
//! type = "trim"
//! max_duration_secs = 30
//! ```
//!
//! Layering: each stage's built-in defaults, then the file, then environment variables
//! `ANB_STAGE_<TYPE>_<FIELD>` (for example `ANB_STAGE_ENCODE_CRF=20`), which apply to every
//! stage of that type. Values parse as TOML (`20`, `true`, `"text"`), else as a plain string.

use crate::error::{ConfigError, Problem};
use crate::registry::Registry;
use crate::stage::{BuildContext, Role, Stage};
use crate::Pipeline;

/// Prefix of the environment variables that override stage fields.
pub const ENV_PREFIX: &str = "ANB_STAGE_";

/// One stage as loaded: its registered type name and its validated config.
#[derive(Debug)]
pub struct LoadedStage {
    pub type_name: String,
    pub stage: Box<dyn Stage>,
}

/// A field override from the environment.
#[derive(Debug, Clone, PartialEq)]
pub struct Override {
    pub stage_type: String,
    pub field: String,
    pub value: toml::Value,
}

/// Collect `ANB_STAGE_<TYPE>_<FIELD>` overrides from an iterator of variables.
pub fn overrides_from(vars: impl IntoIterator<Item = (String, String)>) -> Vec<Override> {
    let mut out: Vec<Override> = vars
        .into_iter()
        .filter_map(|(key, raw)| {
            let rest = key.strip_prefix(ENV_PREFIX)?.to_ascii_lowercase();
            let (stage_type, field) = rest.split_once('_')?;
            Some(Override { stage_type: stage_type.into(), field: field.into(), value: parse_value(&raw) })
        })
        .collect();
    out.sort_by(|a, b| (&a.stage_type, &a.field).cmp(&(&b.stage_type, &b.field)));
    out
}

fn parse_value(raw: &str) -> toml::Value {
    format!("v = {raw}")
        .parse::<toml::Table>()
        .ok()
        .and_then(|mut t| t.remove("v"))
        .unwrap_or_else(|| toml::Value::String(raw.to_owned()))
}

impl Pipeline {
    /// Load and validate a pipeline from TOML text (GStreamer is initialised first). `source_name`
    /// names the file in messages.
    pub fn load(
        text: &str,
        source_name: &str,
        registry: &Registry,
        overrides: &[Override],
        ctx: &BuildContext,
    ) -> Result<Pipeline, ConfigError> {
        let fail = |problems| ConfigError { source_name: source_name.to_owned(), problems };
        if let Err(e) = crate::init() {
            return Err(fail(vec![Problem::file(e.message())]));
        }
        let mut doc: toml::Table =
            text.parse().map_err(|e: toml::de::Error| fail(vec![Problem::file(e.to_string().trim())]))?;

        let mut problems = Vec::new();
        let stage_values = match doc.remove("stage") {
            Some(toml::Value::Array(items)) => items,
            Some(_) => return Err(fail(vec![Problem::file("`stage` must be an array of tables (`[[stage]]`)")])),
            None => Vec::new(),
        };
        for key in doc.keys() {
            problems.push(Problem::file(format!("unknown top-level key `{key}`; only `[[stage]]` tables are allowed")));
        }
        if stage_values.is_empty() {
            problems.push(Problem::file("no stages: add `[[stage]]` tables, at least one with `type = \"encode\"`"));
        }

        let known: Vec<&str> = registry.names().collect();
        let mut stages = Vec::new();
        for (index, value) in stage_values.into_iter().enumerate() {
            let toml::Value::Table(mut table) = value else {
                problems.push(Problem::file("each `stage` entry must be a table").at(index, "?"));
                continue;
            };
            let Some(toml::Value::String(type_name)) = table.remove("type") else {
                let p = Problem::field("type", format!("missing or not a string; valid types: {}", known.join(", ")));
                problems.push(p.at(index, "?"));
                continue;
            };
            for o in overrides.iter().filter(|o| o.stage_type == type_name) {
                table.insert(o.field.clone(), o.value.clone());
            }
            match registry.load(&type_name, table) {
                None => problems.push(
                    Problem::field(
                        "type",
                        format!("unknown stage type `{type_name}`; valid types: {}", known.join(", ")),
                    )
                    .at(index, &type_name),
                ),
                Some(Err(errs)) => problems.extend(errs.into_iter().map(|p| p.at(index, &type_name))),
                Some(Ok(mut stage)) => {
                    if let Some(base) = &ctx.base_dir {
                        stage.resolve_paths(base);
                    }
                    problems.extend(stage.validate().into_iter().map(|p| p.at(index, &type_name)));
                    stages.push((index, LoadedStage { type_name, stage }));
                }
            }
        }
        for o in overrides {
            if !known.contains(&o.stage_type.as_str()) {
                problems.push(Problem::file(format!(
                    "environment override `{ENV_PREFIX}{}_{}` names unknown stage type `{}`",
                    o.stage_type.to_uppercase(),
                    o.field.to_uppercase(),
                    o.stage_type
                )));
            }
        }
        problems.extend(order_problems(&stages));
        problems.extend(dry_build_problems(&stages, ctx));
        if !problems.is_empty() {
            return Err(fail(problems));
        }
        Ok(Pipeline::new(stages.into_iter().map(|(_, s)| s).collect()))
    }
}

/// The media limits of a pipeline file, read without building it: only the input stage's
/// table is loaded and checked (with its environment overrides), so a process that publishes the
/// limits (the web) needs neither GStreamer nor the stages' assets. The defaults when the file
/// has no input stage.
pub fn input_limits(
    text: &str,
    source_name: &str,
    registry: &Registry,
    overrides: &[Override],
) -> Result<anb_media::InputLimits, ConfigError> {
    let fail = |problems| ConfigError { source_name: source_name.to_owned(), problems };
    let doc: toml::Table =
        text.parse().map_err(|e: toml::de::Error| fail(vec![Problem::file(e.to_string().trim())]))?;
    let Some(toml::Value::Array(items)) = doc.get("stage") else { return Ok(Default::default()) };
    for (index, item) in items.iter().enumerate() {
        let Some(mut table) = item.as_table().cloned() else { continue };
        let Some(toml::Value::String(type_name)) = table.remove("type") else { continue };
        for o in overrides.iter().filter(|o| o.stage_type == type_name) {
            table.insert(o.field.clone(), o.value.clone());
        }
        let at = |problems: Vec<Problem>| fail(problems.into_iter().map(|p| p.at(index, &type_name)).collect());
        match registry.load(&type_name, table) {
            Some(Ok(stage)) if stage.role() == Role::Input => {
                let problems = stage.validate();
                if !problems.is_empty() {
                    return Err(at(problems));
                }
                return Ok(stage.input_limits().unwrap_or_default());
            }
            Some(Err(problems)) if registry_role(registry, &type_name) == Some(Role::Input) => {
                return Err(at(problems))
            }
            _ => {}
        }
    }
    Ok(Default::default())
}

/// The role of a registered stage type, from its defaults (every stage loads from an empty
/// table or says which fields it needs).
fn registry_role(registry: &Registry, type_name: &str) -> Option<Role> {
    registry.load(type_name, toml::Table::new())?.ok().map(|s| s.role())
}

/// Order rules: input first, output last, exactly one encode, no filter after encode, one window.
fn order_problems(stages: &[(usize, LoadedStage)]) -> Vec<Problem> {
    let mut problems = Vec::new();
    let count = stages.len();
    let mut encode_at: Option<usize> = None;
    let mut window_at: Option<usize> = None;
    for (pos, (index, s)) in stages.iter().enumerate() {
        let here = |msg: String| Problem::file(msg).at(*index, &s.type_name);
        match s.stage.role() {
            Role::Input if pos != 0 => problems.push(here("an input stage must be the first stage".into())),
            Role::Output if pos + 1 != count => problems.push(here("an output stage must be the last stage".into())),
            Role::Encode => match encode_at {
                Some(first) => problems
                    .push(here(format!("a second encode stage (the first is stage {first}); a pipeline encodes once"))),
                None => encode_at = Some(*index),
            },
            Role::Filter => {
                if let Some(e) = encode_at {
                    problems.push(here(format!("comes after the encode stage (stage {e}); stages that change pictures or sound must come before it")));
                }
            }
            _ => {}
        }
        if s.stage.window().is_some() {
            match window_at {
                Some(first) => {
                    problems.push(here(format!("a second trim window (the first is stage {first}); use one")))
                }
                None => window_at = Some(*index),
            }
        }
    }
    if encode_at.is_none() && count > 0 {
        problems.push(Problem::file("no encode stage: add one `[[stage]]` with `type = \"encode\"`"));
    }
    problems
}

/// Build every stage's elements once and throw them away, so missing plugins and bad raw chains
/// are reported at load time rather than in the middle of a job.
fn dry_build_problems(stages: &[(usize, LoadedStage)], ctx: &BuildContext) -> Vec<Problem> {
    let ctx = &BuildContext { dry_run: true, ..ctx.clone() };
    let mut problems = Vec::new();
    for (index, s) in stages {
        if !s.stage.validate().is_empty() {
            continue; // already reported; building with invalid options says nothing new
        }
        for result in [s.stage.video(ctx), s.stage.audio(ctx)] {
            if let Err(e) = result {
                problems.push(Problem::file(e.message()).at(*index, &s.type_name));
            }
        }
    }
    problems
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde::Deserialize;

    fn default_level() -> u32 {
        1
    }

    #[derive(Debug, Deserialize)]
    #[serde(deny_unknown_fields)]
    #[allow(dead_code)] // `label` exists to be deserialized
    struct Level {
        #[serde(default = "default_level")]
        level: u32,
        #[serde(default)]
        label: String,
    }

    impl Stage for Level {
        fn validate(&self) -> Vec<Problem> {
            if self.level > 9 {
                vec![Problem::field("level", "must be 0 to 9")]
            } else {
                Vec::new()
            }
        }
    }

    #[derive(Debug, Deserialize)]
    struct Enc {}

    impl Stage for Enc {
        fn role(&self) -> Role {
            Role::Encode
        }
    }

    fn registry() -> Registry {
        Registry::new().register::<Level>("level").register::<Enc>("enc")
    }

    fn load_with(text: &str, overrides: &[Override]) -> Result<Pipeline, ConfigError> {
        crate::init().unwrap();
        Pipeline::load(text, "test.toml", &registry(), overrides, &BuildContext::with_threads(1))
    }

    fn level_of(p: &Pipeline) -> String {
        format!("{:?}", p.stages()[0].stage)
    }

    #[test]
    fn defaults_then_file_then_environment() {
        let p = load_with("[[stage]]\ntype = \"level\"\n[[stage]]\ntype = \"enc\"", &[]).unwrap();
        assert!(level_of(&p).contains("level: 1"), "default: {}", level_of(&p));
        let p = load_with("[[stage]]\ntype = \"level\"\nlevel = 4\n[[stage]]\ntype = \"enc\"", &[]).unwrap();
        assert!(level_of(&p).contains("level: 4"));
        let env = overrides_from([("ANB_STAGE_LEVEL_LEVEL".to_string(), "7".to_string())]);
        let p = load_with("[[stage]]\ntype = \"level\"\nlevel = 4\n[[stage]]\ntype = \"enc\"", &env).unwrap();
        assert!(level_of(&p).contains("level: 7"), "env wins: {}", level_of(&p));
    }

    #[test]
    fn every_bad_field_of_one_stage_is_reported() {
        let text = "[[stage]]\ntype = \"level\"\nlevel = \"high\"\nlabel = 3\ncolour = 1\n[[stage]]\ntype = \"enc\"";
        let err = load_with(text, &[]).unwrap_err();
        let mut fields: Vec<_> = err.problems.iter().filter_map(|p| p.field.clone()).collect();
        fields.sort();
        assert_eq!(fields, ["colour", "label", "level"], "{err}");
        assert!(err.problems.iter().all(|p| p.stage == Some(0)));
    }

    #[test]
    fn file_level_problems_are_reported_with_stage_problems() {
        let env = overrides_from([("ANB_STAGE_NOPE_X".to_string(), "1".to_string())]);
        let err = load_with("title = \"x\"\n[[stage]]\ntype = \"level\"\nlevel = 12", &env).unwrap_err();
        let text = err.to_string();
        assert_eq!(err.problems.len(), 4, "{text}");
        assert!(text.contains("unknown top-level key `title`"), "{text}");
        assert!(text.contains("stage 0 (`level`), field `level`: must be 0 to 9"), "{text}");
        assert!(text.contains("no encode stage"), "{text}");
        assert!(text.contains("ANB_STAGE_NOPE_X"), "{text}");
    }

    #[test]
    fn syntax_errors_are_reported_not_panicked() {
        let err = load_with("[[stage]\ntype = ", &[]).unwrap_err();
        assert_eq!(err.problems.len(), 1);
        let err = load_with("", &[]).unwrap_err();
        assert!(err.to_string().contains("no stages"), "{err}");
    }

    #[test]
    fn overrides_parse_type_field_and_toml_values() {
        let vars = vec![
            ("ANB_STAGE_ENCODE_CRF".to_string(), "20".to_string()),
            ("ANB_STAGE_WATERMARK_TEXT".to_string(), "ANB Rising".to_string()),
            ("ANB_LISTEN".to_string(), "x".to_string()),
        ];
        let o = overrides_from(vars);
        assert_eq!(o.len(), 2);
        assert_eq!(
            o[0],
            Override { stage_type: "encode".into(), field: "crf".into(), value: toml::Value::Integer(20) }
        );
        assert_eq!(o[1].value, toml::Value::String("ANB Rising".into()));
    }
}
