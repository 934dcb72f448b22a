//! Side outputs: artifacts a stage publishes beside the main output (a poster now; previews or
//! renditions later), made from the same decoded frames in the same graph, with no second
//! decode. A stage builds its branch inside its own elements (a `tee` and a bounded queue) and
//! publishes what it made through the run's [`Artifacts`]; the run reports them in its
//! [`RunReport`](crate::RunReport), and the caller stores them beside the output.

use std::sync::{Arc, Mutex};

/// One finished side output.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Artifact {
    /// What it is (`poster`): one per name in a run.
    pub name: String,
    /// File extension without the dot (`jpg`).
    pub extension: String,
    /// MIME type (`image/jpeg`).
    pub content_type: String,
    pub bytes: Vec<u8>,
}

/// Where one run's stages publish their artifacts. Clones share the same list.
#[derive(Debug, Clone, Default)]
pub struct Artifacts(Arc<Mutex<Vec<Artifact>>>);

impl Artifacts {
    /// Add an artifact, replacing an earlier one of the same name.
    pub fn publish(&self, artifact: Artifact) {
        let mut list = self.0.lock().expect("artifacts");
        list.retain(|a| a.name != artifact.name);
        list.push(artifact);
    }

    /// Everything published so far, in publishing order; the list is left empty.
    pub fn take(&self) -> Vec<Artifact> {
        std::mem::take(&mut *self.0.lock().expect("artifacts"))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn artifact(name: &str, byte: u8) -> Artifact {
        Artifact { name: name.into(), extension: "jpg".into(), content_type: "image/jpeg".into(), bytes: vec![byte] }
    }

    #[test]
    fn clones_share_the_list_and_a_name_is_published_once() {
        let artifacts = Artifacts::default();
        let stage_side = artifacts.clone();
        stage_side.publish(artifact("poster", 1));
        stage_side.publish(artifact("preview", 2));
        stage_side.publish(artifact("poster", 3));
        assert_eq!(artifacts.take(), [artifact("preview", 2), artifact("poster", 3)]);
        assert!(artifacts.take().is_empty());
    }
}
