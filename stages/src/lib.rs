//! anb-stages: the built-in stages. Adding a stage is one module here plus one `register` line.

pub mod audio;
pub mod encode;
pub mod endpoints;
pub mod gst_chain;
pub mod poster;
pub mod resize;
pub mod trim;
pub mod watermark;

#[cfg(test)]
mod test_support;

use anb_pipeline::Registry;

/// Every built-in stage, by the name used as `type` in `pipeline.toml`.
pub fn registry() -> Registry {
    Registry::new()
        .register::<endpoints::Download>("download")
        .register::<trim::Trim>("trim")
        .register::<resize::Resize>("resize")
        .register::<watermark::Watermark>("watermark")
        .register::<audio::Audio>("audio")
        .register::<gst_chain::GstChain>("gst")
        .register::<poster::Poster>("poster")
        .register::<encode::Encode>("encode")
        .register::<endpoints::Upload>("upload")
}
