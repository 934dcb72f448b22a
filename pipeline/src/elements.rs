//! Creating GStreamer elements with errors that tell an operator what to install.

use gst::prelude::*;

use crate::error::{ErrorCode, PipelineError};

/// Create an element from its factory name.
pub fn make(factory: &str) -> Result<gst::Element, PipelineError> {
    gst::ElementFactory::make(factory).build().map_err(|_| missing(factory))
}

/// Create an element and set properties from strings (enums and numbers parse as in gst-launch).
pub fn make_with(factory: &str, props: &[(&str, &str)]) -> Result<gst::Element, PipelineError> {
    let element = make(factory)?;
    for (name, value) in props {
        if element.find_property(name).is_none() {
            return Err(PipelineError::new(
                ErrorCode::Internal,
                format!("element `{factory}` has no property `{name}`"),
            ));
        }
        element.set_property_from_str(name, value);
    }
    Ok(element)
}

/// Fail as `make` would when `factory` is not installed, without creating the element (which
/// would load its plugin).
pub fn require(factory: &str) -> Result<(), PipelineError> {
    gst::ElementFactory::find(factory).map(|_| ()).ok_or_else(|| missing(factory))
}

/// A `capsfilter` restricting the stream to `caps` (gst-launch syntax).
pub fn capsfilter(caps: &str) -> Result<gst::Element, PipelineError> {
    let parsed: gst::Caps = caps
        .parse()
        .map_err(|_| PipelineError::new(ErrorCode::InvalidPipeline, format!("`{caps}` is not valid caps")))?;
    let element = make("capsfilter")?;
    element.set_property("caps", &parsed);
    Ok(element)
}

fn missing(factory: &str) -> PipelineError {
    let package = match factory {
        "x264enc" => "gstreamer1.0-plugins-ugly",
        f if f.starts_with("av") => "gstreamer1.0-libav",
        "mp4mux" | "qtdemux" | "gdkpixbufoverlay" | "videoflip" => "gstreamer1.0-plugins-good",
        "h264parse" => "gstreamer1.0-plugins-bad",
        "textoverlay" => "gstreamer1.0-x",
        _ => "gstreamer1.0-plugins-base",
    };
    PipelineError::new(
        ErrorCode::Internal,
        format!("GStreamer element `{factory}` is not installed (Debian package {package}; `make deps` installs it)"),
    )
}

/// Describe an element as in gst-launch syntax, with the properties that differ from defaults.
pub fn describe(element: &gst::Element) -> String {
    use gst::prelude::GstValueExt;
    // A plain bin (a stage's own branch, such as the poster's tee) is described by what it holds.
    let Some(factory) = element.factory().map(|f| f.name().to_string()).filter(|f| f != "bin") else {
        return describe_bin(element);
    };
    if factory == "capsfilter" {
        let caps = element.property::<Option<gst::Caps>>("caps");
        return caps.map(|c| c.to_string()).unwrap_or(factory);
    }
    let mut out = factory;
    for spec in element.list_properties() {
        let name = spec.name();
        if ["name", "parent", "qos"].contains(&name)
            || !spec.flags().contains(gst::glib::ParamFlags::WRITABLE)
            || spec.flags().contains(gst::glib::ParamFlags::DEPRECATED)
        {
            continue;
        }
        if !spec.flags().contains(gst::glib::ParamFlags::READABLE) {
            continue;
        }
        let value = element.property_value(name);
        let is_default = spec.default_value().compare(&value) == Some(std::cmp::Ordering::Equal);
        if is_default || value.type_().is_a(gst::glib::Type::OBJECT) {
            continue;
        }
        if let Some(text) = value_text(&value) {
            out.push_str(&format!(" {name}={text}"));
        }
    }
    out
}

/// A bin (a `gst` stage's chain) is described by its children, upstream first.
fn describe_bin(element: &gst::Element) -> String {
    use gst::prelude::*;
    let Some(bin) = element.downcast_ref::<gst::Bin>() else {
        // Made without a factory (an `appsink` from its builder): its type says what it is.
        let type_name = element.type_().name();
        return type_name.strip_prefix("Gst").unwrap_or(type_name).to_ascii_lowercase();
    };
    let mut children: Vec<String> =
        bin.iterate_sorted().into_iter().filter_map(Result::ok).map(|child| describe(&child)).collect();
    children.reverse();
    format!("( {} )", children.join(" ! "))
}

fn value_text(value: &gst::glib::Value) -> Option<String> {
    use gst::prelude::*;
    if let Ok(s) = value.get::<Option<String>>() {
        return s.map(|s| quoted(&s));
    }
    value.serialize().ok().map(|s| s.to_string())
}

/// A string value quoted and escaped as gst-launch reads it back.
pub fn quoted(value: &str) -> String {
    format!("\"{}\"", value.replace('\\', "\\\\").replace('"', "\\\""))
}

/// Register an element type of this program under `name`, once per process: later calls do
/// nothing and succeed. `element_type` is only asked for on the first call.
pub fn register_once(
    once: &'static std::sync::Once,
    name: &str,
    rank: gst::Rank,
    element_type: impl FnOnce() -> gst::glib::Type,
) -> Result<(), gst::glib::BoolError> {
    let mut result = Ok(());
    once.call_once(|| result = gst::Element::register(None, name, rank, element_type()));
    result
}

/// A pipeline set to `Playing` that goes back to `Null` when dropped, on every path out
/// (an error, an early return, a failed assertion in a test), so no streaming thread outlives
/// its owner. Derefs to the pipeline. (The job runner has its own teardown, bounded in time.)
pub struct Playing(gst::Pipeline);

impl Playing {
    /// Set `pipeline` playing; on failure it is already back to `Null` when this returns.
    pub fn start(pipeline: gst::Pipeline) -> Result<Self, gst::StateChangeError> {
        let playing = Playing(pipeline);
        playing.0.set_state(gst::State::Playing)?;
        Ok(playing)
    }
}

impl std::ops::Deref for Playing {
    type Target = gst::Pipeline;
    fn deref(&self) -> &gst::Pipeline {
        &self.0
    }
}

impl Drop for Playing {
    fn drop(&mut self) {
        if let Err(e) = self.0.set_state(gst::State::Null) {
            tracing::warn!("a pipeline did not go back to Null: {e}");
        }
    }
}

/// The two pad templates of a one-in, one-out element: `sink` and `src`, always present.
pub fn sink_and_src_templates(sink: &gst::Caps, src: &gst::Caps) -> Vec<gst::PadTemplate> {
    [("sink", gst::PadDirection::Sink, sink), ("src", gst::PadDirection::Src, src)]
        .into_iter()
        .map(|(name, direction, caps)| {
            gst::PadTemplate::new(name, direction, gst::PadPresence::Always, caps).expect("a valid pad template")
        })
        .collect()
}

/// An element's metadata, with ANB Video as its author.
pub fn metadata(long_name: &str, classification: &str, description: &str) -> gst::subclass::ElementMetadata {
    gst::subclass::ElementMetadata::new(long_name, classification, description, "ANB Video")
}
