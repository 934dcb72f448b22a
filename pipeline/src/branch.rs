//! The element chains of the video and audio branches, from the stages in file order.
//!
//! Used both to build the real graph and to describe it (`anb pipeline check`), so what is printed
//! is what runs.

use gst::prelude::*;

use crate::config::LoadedStage;
use crate::elements::{describe, make_with};
use crate::error::PipelineError;
use crate::stage::{BuildContext, Role};

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum BranchKind {
    Video,
    Audio,
    /// The input's sound as it is, still encoded (see `Pipeline::passes_encoded_audio`): the
    /// head queue only, no stage's elements and no encoder.
    EncodedAudio,
}

/// The elements of one branch, head element first, encoder last.
///
/// With several CPUs, queues split the branch into threads: the head queue decouples the branch
/// from the decoder, and in the audio branch a queue before the encoder lets filtering and
/// encoding run on different cores. The video encoder needs no such queue: x264 encodes on its
/// own frame threads and only takes each picture in, and the three pictures a queue held there
/// cost 3.9 MiB of the job's peak on 2 CPUs for no gain in wall time (9.16 s against 9.35 s and
/// 9.39 s against 9.12 s, medians of 5 and 7 alternating pairs). The head queue is small and
/// bounded: a decoded picture in it is one the decoder cannot reuse, 3 MB at 1080p (two instead
/// of four: 7 MiB less at the job's peak on 2 CPUs, the same wall time).
///
/// On one CPU (0.25 to 1 vCPU tasks) threads cannot run at the same time, so a queue only adds
/// thread switches and keeps more frames in flight, which a CFS quota's throttling pauses evict
/// from the caches. There the video branch runs in decodebin's streaming thread from decoder to
/// encoder, one frame at a time as ffmpeg does, behind a passthrough head that carries the trim
/// window's probes. The audio branch keeps its head queue on any CPU count: audio must be able to
/// run seconds ahead while the video encoder fills its lookahead.
pub(crate) fn elements(
    kind: BranchKind,
    stages: &[LoadedStage],
    ctx: &BuildContext,
) -> Result<Vec<gst::Element>, PipelineError> {
    let threaded = ctx.threads > 1;
    let mut chain = vec![head(kind, threaded)?];
    if kind == BranchKind::EncodedAudio {
        return Ok(chain);
    }
    for s in stages {
        if s.stage.role() == Role::Encode && threaded && kind == BranchKind::Audio {
            chain.push(make_with(
                "queue",
                &[("max-size-buffers", "3"), ("max-size-bytes", "0"), ("max-size-time", "0")],
            )?);
        }
        let mut added = match kind {
            BranchKind::Video => s.stage.video(ctx)?,
            BranchKind::Audio | BranchKind::EncodedAudio => s.stage.audio(ctx)?,
        };
        chain.append(&mut added);
    }
    Ok(chain)
}

fn head(kind: BranchKind, threaded: bool) -> Result<gst::Element, PipelineError> {
    match kind {
        BranchKind::Video if threaded => {
            make_with("queue", &[("max-size-buffers", "2"), ("max-size-bytes", "0"), ("max-size-time", "0")])
        }
        BranchKind::Video => make_with("identity", &[("silent", "true")]),
        // Audio may have to wait while the video encoder fills its lookahead: allow a few seconds.
        BranchKind::Audio | BranchKind::EncodedAudio => {
            make_with("queue", &[("max-size-buffers", "0"), ("max-size-bytes", "0"), ("max-size-time", "5000000000")])
        }
    }
}

/// gst-launch style text of a chain.
pub(crate) fn describe_chain(chain: &[gst::Element]) -> String {
    chain.iter().map(describe).collect::<Vec<_>>().join(" ! ")
}

/// Add a chain to `bin`, link it in order and bring it to the bin's state.
pub(crate) fn add_and_link(bin: &gst::Pipeline, chain: &[gst::Element]) -> Result<(), PipelineError> {
    use crate::error::ErrorCode;
    bin.add_many(chain).map_err(|e| PipelineError::new(ErrorCode::Internal, format!("adding elements: {e}")))?;
    gst::Element::link_many(chain).map_err(|_| {
        PipelineError::new(
            ErrorCode::InvalidPipeline,
            format!("stages cannot be linked (incompatible formats) in `{}`", describe_chain(chain)),
        )
    })?;
    for element in chain.iter().rev() {
        element
            .sync_state_with_parent()
            .map_err(|e| PipelineError::new(ErrorCode::Internal, format!("starting {}: {e}", element.name())))?;
    }
    Ok(())
}
