//! The closed registry of stage types: `type = "trim"` selects the stage's config struct.

use std::collections::BTreeMap;

use serde::de::DeserializeOwned;

use crate::error::Problem;
use crate::stage::Stage;

type Loader = fn(toml::Table) -> Result<Box<dyn Stage>, Vec<Problem>>;

/// Stage types by name. Built with one `register` line per stage.
#[derive(Clone, Default)]
pub struct Registry {
    loaders: BTreeMap<&'static str, Loader>,
}

impl Registry {
    pub fn new() -> Self {
        Self::default()
    }

    /// Register a stage type under `name`; its config struct is deserialized from the stage table.
    pub fn register<S: Stage + DeserializeOwned + 'static>(mut self, name: &'static str) -> Self {
        self.loaders.insert(name, load::<S>);
        self
    }

    pub fn names(&self) -> impl Iterator<Item = &'static str> + '_ {
        self.loaders.keys().copied()
    }

    pub(crate) fn load(&self, name: &str, table: toml::Table) -> Option<Result<Box<dyn Stage>, Vec<Problem>>> {
        self.loaders.get(name).map(|load| load(table))
    }
}

/// Deserialize a stage table, reporting every bad field rather than the first: a field that fails
/// is recorded and removed, and deserialization is tried again (bounded by the number of keys).
fn load<S: Stage + DeserializeOwned + 'static>(mut table: toml::Table) -> Result<Box<dyn Stage>, Vec<Problem>> {
    let mut problems = Vec::new();
    for _ in 0..=table.len() {
        let value = toml::Value::Table(table.clone());
        match serde_path_to_error::deserialize::<_, S>(value) {
            Ok(stage) if problems.is_empty() => return Ok(Box::new(stage)),
            Ok(_) => return Err(problems),
            Err(err) => {
                let message = err.inner().to_string();
                let field = unknown_field(&message)
                    .or_else(|| err.path().iter().next().map(|seg| seg.to_string()))
                    .filter(|f| table.contains_key(f));
                match field {
                    Some(field) => {
                        table.remove(&field);
                        problems.push(Problem::field(&field, tidy(&message)));
                    }
                    None => {
                        problems.push(Problem::file(tidy(&message)));
                        return Err(problems);
                    }
                }
            }
        }
    }
    Err(problems)
}

/// serde reports unknown keys as "unknown field `x`, expected one of ...".
fn unknown_field(message: &str) -> Option<String> {
    let rest = message.strip_prefix("unknown field `")?;
    Some(rest[..rest.find('`')?].to_owned())
}

fn tidy(message: &str) -> String {
    message.lines().next().unwrap_or(message).trim().to_owned()
}
