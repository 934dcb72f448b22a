//! `anb dlq redrive`: move every dead-letter message back to the job queue.

use anb_core::backends::Backends;
use anb_core::queue;

use crate::cli::settings;
use crate::exit::{Exit, Outcome};
use crate::worker::{runtime, signer};

pub fn redrive() -> Outcome {
    let settings = settings()?;
    runtime()?.block_on(async {
        let secret = settings.secret_key.clone().unwrap_or_default();
        let backends = Backends::connect(&settings, signer(&settings, &secret)).await.map_err(anyhow::Error::from)?;
        let Some(dead) = backends.dead_letters.clone() else {
            return Err(Exit::Config("ANB_DLQ_URL: no dead-letter queue is configured".into()));
        };
        let moved =
            queue::redrive(dead.as_ref(), backends.queue.as_ref(), usize::MAX).await.map_err(anyhow::Error::from)?;
        println!("moved {moved} message(s) from the dead-letter queue back to the queue");
        Ok(())
    })
}
