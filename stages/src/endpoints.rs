//! `download` and `upload`: options for the input and output endpoints. The job supplies the
//! locations (a path or an object key); these say how to move the bytes.

use anb_pipeline::{InputLimits, Problem, Role, SinkOptions, SourceOptions, Stage};
use serde::{Deserialize, Serialize};

/// Reading the input: ranged reads of `block_size_kib`, `cache_blocks` kept, `read_ahead_blocks`
/// fetched ahead of sequential reads. Local files ignore what does not apply. `limits` (a
/// `[stage.limits]` table) are the media limits every input is checked against before and while
/// it is decoded; a pipeline without a `download` stage uses their defaults.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct Download {
    /// Size of one ranged read, in KiB (64 to 16384). Default 1024.
    pub block_size_kib: u32,
    /// Blocks fetched ahead while reads are sequential (0 to 16). Default 2.
    pub read_ahead_blocks: u32,
    /// Blocks kept in memory (1 to 64). Default 8.
    pub cache_blocks: u32,
    /// Media limits (see `anb_media::InputLimits` for each field and its default).
    pub limits: InputLimits,
}

impl Default for Download {
    fn default() -> Self {
        let source = SourceOptions::default();
        Download {
            block_size_kib: source.block_size_kib,
            read_ahead_blocks: source.read_ahead_blocks,
            cache_blocks: source.cache_blocks,
            limits: InputLimits::default(),
        }
    }
}

impl Stage for Download {
    fn role(&self) -> Role {
        Role::Input
    }

    fn validate(&self) -> Vec<Problem> {
        [
            Problem::out_of_range("block_size_kib", self.block_size_kib, 64..=16384),
            Problem::out_of_range("read_ahead_blocks", self.read_ahead_blocks, 0..=16),
            Problem::out_of_range("cache_blocks", self.cache_blocks, 1..=64),
            Problem::out_of_range("limits.max_width", self.limits.max_width, 16..=65535),
            Problem::out_of_range("limits.max_height", self.limits.max_height, 16..=65535),
            Problem::out_of_range("limits.max_pixels", self.limits.max_pixels, 256..=1 << 30),
            Problem::out_of_range("limits.max_fps", self.limits.max_fps, 1..=10_000),
            Problem::out_of_range("limits.max_pixel_rate", self.limits.max_pixel_rate, 1..=1 << 40),
            Problem::out_of_range("limits.max_streams", self.limits.max_streams, 1..=64),
            Problem::out_of_range("limits.max_duration_secs", self.limits.max_duration_secs, 1..=86_400),
            Problem::out_of_range("limits.max_frames", self.limits.max_frames, 1..=10_000_000),
            Problem::out_of_range("limits.timeout_base_secs", self.limits.timeout_base_secs, 1..=86_400),
            Problem::out_of_range(
                "limits.timeout_secs_per_output_sec",
                self.limits.timeout_secs_per_output_sec,
                0..=3600,
            ),
        ]
        .into_iter()
        .flatten()
        .collect()
    }

    fn input_limits(&self) -> Option<InputLimits> {
        Some(self.limits.clone())
    }

    fn source_options(&self) -> Option<SourceOptions> {
        Some(SourceOptions {
            block_size_kib: self.block_size_kib,
            read_ahead_blocks: self.read_ahead_blocks,
            cache_blocks: self.cache_blocks,
        })
    }
}

/// Writing the output: multipart parts of `part_size_mib` on object storage.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct Upload {
    /// Multipart part size in MiB (5 to 512; S3's minimum is 5). Default 8.
    pub part_size_mib: u32,
}

impl Default for Upload {
    fn default() -> Self {
        Upload { part_size_mib: SinkOptions::default().part_size_mib }
    }
}

impl Stage for Upload {
    fn role(&self) -> Role {
        Role::Output
    }

    fn validate(&self) -> Vec<Problem> {
        // S3 multipart parts are at least 5 MiB.
        Problem::out_of_range("part_size_mib", self.part_size_mib, 5..=512).into_iter().collect()
    }

    fn sink_options(&self) -> Option<SinkOptions> {
        Some(SinkOptions { part_size_mib: self.part_size_mib })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::test_support::*;

    #[test]
    fn toml_round_trip_and_unknown_field() {
        let limits = InputLimits { max_width: 1920, max_fps: 60, ..InputLimits::default() };
        assert_round_trip(&Download { block_size_kib: 512, read_ahead_blocks: 1, cache_blocks: 4, limits });
        assert_round_trip(&Upload { part_size_mib: 16 });
        assert_rejects_unknown_field::<Download>("block_size = 1");
        assert_rejects_unknown_field::<Upload>("part_size = 1");
    }

    #[test]
    fn out_of_range_options_are_rejected_and_valid_ones_reach_the_job() {
        let limits = InputLimits { max_streams: 0, ..InputLimits::default() };
        assert_eq!(Download { block_size_kib: 1, read_ahead_blocks: 99, cache_blocks: 0, limits }.validate().len(), 4);
        let down: Download = toml::from_str("[limits]\nmax_width = 1920").unwrap();
        assert_eq!(down.input_limits().unwrap().max_width, 1920);
        assert_eq!(
            down.input_limits().unwrap().max_height,
            InputLimits::default().max_height,
            "unset limits keep their defaults"
        );
        assert_eq!(Upload { part_size_mib: 1 }.validate().len(), 1);
        let up: Upload = toml::from_str("part_size_mib = 32").unwrap();
        assert_eq!(up.sink_options(), Some(SinkOptions { part_size_mib: 32 }));
    }

    #[test]
    fn the_limits_of_a_pipeline_file_are_read_without_building_it() {
        let registry = crate::registry();
        // The watermark's image does not exist: building would fail, reading the limits does not.
        let text = "[[stage]]\ntype = \"download\"\n[stage.limits]\nmax_fps = 120\n\n\
                    [[stage]]\ntype = \"watermark\"\nimage = { path = \"missing.png\" }\n";
        let limits = anb_pipeline::input_limits(text, "t.toml", &registry, &[]).unwrap();
        assert_eq!((limits.max_fps, limits.max_width), (120, InputLimits::default().max_width));
        let overrides =
            anb_pipeline::overrides_from([("ANB_STAGE_DOWNLOAD_LIMITS".to_owned(), "{ max_fps = 60 }".to_owned())]);
        assert_eq!(anb_pipeline::input_limits(text, "t.toml", &registry, &overrides).unwrap().max_fps, 60);
        let none = anb_pipeline::input_limits("[[stage]]\ntype = \"encode\"\n", "t.toml", &registry, &[]).unwrap();
        assert_eq!(none, InputLimits::default(), "no input stage: the defaults");
        let bad = anb_pipeline::input_limits(
            "[[stage]]\ntype = \"download\"\n[stage.limits]\nmax_streams = 0\n",
            "t.toml",
            &registry,
            &[],
        );
        assert!(bad.unwrap_err().to_string().contains("limits.max_streams"));
    }

    #[test]
    fn omitted_options_take_the_defaults() {
        assert_defaults_fill_in("cache_blocks = 4", Download { cache_blocks: 4, ..Download::default() });
        assert_eq!(Download::default().block_size_kib, SourceOptions::default().block_size_kib);
        assert_defaults_fill_in("part_size_mib = 16", Upload { part_size_mib: 16 });
        assert_eq!(Upload::default().part_size_mib, SinkOptions::default().part_size_mib);
    }
}
