//! `download` and `upload`: options for the input and output endpoints. The job supplies the
//! locations (a path or an object key); these say how to move the bytes.

use anb_pipeline::{Problem, Role, SinkOptions, SourceOptions, Stage};
use serde::{Deserialize, Serialize};

fn default_block_size_kib() -> u32 {
    SourceOptions::default().block_size_kib
}
fn default_read_ahead_blocks() -> u32 {
    SourceOptions::default().read_ahead_blocks
}
fn default_cache_blocks() -> u32 {
    SourceOptions::default().cache_blocks
}
fn default_part_size_mib() -> u32 {
    SinkOptions::default().part_size_mib
}

/// Reading the input: ranged reads of `block_size_kib`, `cache_blocks` kept, `read_ahead_blocks`
/// fetched ahead of sequential reads. Local files ignore what does not apply.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Download {
    /// Size of one ranged read, in KiB (64 to 16384). Default 1024.
    #[serde(default = "default_block_size_kib")]
    pub block_size_kib: u32,
    /// Blocks fetched ahead while reads are sequential (0 to 16). Default 2.
    #[serde(default = "default_read_ahead_blocks")]
    pub read_ahead_blocks: u32,
    /// Blocks kept in memory (1 to 64). Default 8.
    #[serde(default = "default_cache_blocks")]
    pub cache_blocks: u32,
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
        ]
        .into_iter()
        .flatten()
        .collect()
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
#[serde(deny_unknown_fields)]
pub struct Upload {
    /// Multipart part size in MiB (5 to 512; S3's minimum is 5). Default 8.
    #[serde(default = "default_part_size_mib")]
    pub part_size_mib: u32,
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
        assert_round_trip(&Download { block_size_kib: 512, read_ahead_blocks: 1, cache_blocks: 4 });
        assert_round_trip(&Upload { part_size_mib: 16 });
        assert_rejects_unknown_field::<Download>("block_size = 1");
        assert_rejects_unknown_field::<Upload>("part_size = 1");
    }

    #[test]
    fn out_of_range_options_are_rejected_and_valid_ones_reach_the_job() {
        assert_eq!(Download { block_size_kib: 1, read_ahead_blocks: 99, cache_blocks: 0 }.validate().len(), 3);
        assert_eq!(Upload { part_size_mib: 1 }.validate().len(), 1);
        let up: Upload = toml::from_str("part_size_mib = 32").unwrap();
        assert_eq!(up.sink_options(), Some(SinkOptions { part_size_mib: 32 }));
    }
}
