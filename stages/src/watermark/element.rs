//! `anbwatermark`: blends marks drawn once per frame size onto every frame, in place.
//!
//! `marks` is a gst-launch chain of overlay elements (`gdkpixbufoverlay`, `textoverlay`, ...);
//! see `marks.rs` for why they draw once on a canvas instead of on every frame.

use std::sync::{LazyLock, Mutex, Once};

use super::marks::{self, Marks, Subsampling, Yuv};
use gst::glib;
use gst::prelude::*;
use gst::subclass::prelude::*;
use gst_base::subclass::prelude::*;
use gst_video::prelude::*;
use gst_video::subclass::prelude::*;

pub const ELEMENT_NAME: &str = "anbwatermark";

/// The element's own debug category (`GST_DEBUG=anbwatermark:5`).
static CAT: LazyLock<gst::DebugCategory> = LazyLock::new(|| {
    gst::DebugCategory::new(ELEMENT_NAME, gst::DebugColorFlags::empty(), Some("Text and PNG watermarks (anb-stages)"))
});

/// The planar 8-bit YUV formats blended directly; a `videoconvert` before the element brings
/// anything else to one of them.
const FORMATS: [gst_video::VideoFormat; 4] = [
    gst_video::VideoFormat::I420,
    gst_video::VideoFormat::Yv12,
    gst_video::VideoFormat::Y42b,
    gst_video::VideoFormat::Y444,
];

/// Register the element with GStreamer (once per process).
pub fn register() -> Result<(), glib::BoolError> {
    static ONCE: Once = Once::new();
    anb_pipeline::elements::register_once(&ONCE, ELEMENT_NAME, gst::Rank::NONE, Watermark::static_type)
}

glib::wrapper! {
    pub struct Watermark(ObjectSubclass<imp::Watermark>)
        @extends gst_video::VideoFilter, gst_base::BaseTransform, gst::Element, gst::Object;
}

mod imp {
    use super::*;

    /// The element's settings (its properties).
    #[derive(Debug, Clone, Default)]
    struct Settings {
        /// gst-launch text of the overlay chain.
        marks: String,
    }

    #[derive(Default)]
    pub struct Watermark {
        settings: Mutex<Settings>,
        /// Drawn for the negotiated frame size; `None` until caps arrive.
        marks: Mutex<Option<Marks>>,
    }

    #[glib::object_subclass]
    impl ObjectSubclass for Watermark {
        const NAME: &'static str = "AnbWatermark";
        type Type = super::Watermark;
        type ParentType = gst_video::VideoFilter;
    }

    impl ObjectImpl for Watermark {
        fn properties() -> &'static [glib::ParamSpec] {
            static PROPS: LazyLock<Vec<glib::ParamSpec>> = LazyLock::new(|| {
                vec![glib::ParamSpecString::builder("marks")
                    .nick("Marks")
                    .blurb("gst-launch chain of overlay elements that draw the marks")
                    .build()]
            });
            PROPS.as_ref()
        }

        fn set_property(&self, _id: usize, value: &glib::Value, pspec: &glib::ParamSpec) {
            let mut settings = self.settings.lock().unwrap();
            match pspec.name() {
                "marks" => {
                    settings.marks = value.get::<Option<String>>().expect("type checked by GObject").unwrap_or_default()
                }
                other => unreachable!("no property {other}"),
            }
        }

        fn property(&self, _id: usize, pspec: &glib::ParamSpec) -> glib::Value {
            let settings = self.settings.lock().unwrap();
            match pspec.name() {
                "marks" => settings.marks.to_value(),
                other => unreachable!("no property {other}"),
            }
        }
    }

    impl GstObjectImpl for Watermark {}

    impl ElementImpl for Watermark {
        fn metadata() -> Option<&'static gst::subclass::ElementMetadata> {
            static META: LazyLock<gst::subclass::ElementMetadata> = LazyLock::new(|| {
                anb_pipeline::elements::metadata(
                    "ANB watermark",
                    "Filter/Effect/Video",
                    "Blends marks drawn once by overlay elements onto every frame",
                )
            });
            Some(&*META)
        }

        fn pad_templates() -> &'static [gst::PadTemplate] {
            static TEMPLATES: LazyLock<Vec<gst::PadTemplate>> = LazyLock::new(|| {
                let caps = gst_video::VideoCapsBuilder::new().format_list(FORMATS).build();
                anb_pipeline::elements::sink_and_src_templates(&caps, &caps)
            });
            TEMPLATES.as_ref()
        }
    }

    impl BaseTransformImpl for Watermark {
        const MODE: gst_base::subclass::BaseTransformMode = gst_base::subclass::BaseTransformMode::AlwaysInPlace;
        const PASSTHROUGH_ON_SAME_CAPS: bool = false;
        const TRANSFORM_IP_ON_PASSTHROUGH: bool = false;
    }

    impl VideoFilterImpl for Watermark {
        fn set_info(
            &self,
            _incaps: &gst::Caps,
            in_info: &gst_video::VideoInfo,
            _outcaps: &gst::Caps,
            _out_info: &gst_video::VideoInfo,
        ) -> Result<(), gst::LoggableError> {
            let description = self.settings.lock().unwrap().marks.clone();
            let (width, height) = (in_info.width(), in_info.height());
            let canvas =
                marks::draw_canvas(&description, width, height).map_err(|e| gst::loggable_error!(super::CAT, "{e}"))?;
            let colorimetry = in_info.colorimetry();
            // Unknown matrices: BT.709 for HD and larger, BT.601 below, as players assume.
            let (kr, kb) =
                colorimetry.matrix().kr_kb().unwrap_or(if height >= 720 { (0.2126, 0.0722) } else { (0.299, 0.114) });
            let yuv = Yuv { kr, kb, limited: colorimetry.range() != gst_video::VideoColorRange::Range0_255 };
            let format = in_info.format_info();
            let mut subsampling: Subsampling = [(0, 0); 3];
            for (component, sub) in subsampling.iter_mut().enumerate() {
                *sub = (format.w_sub()[component], format.h_sub()[component]);
            }
            let drawn = Marks::from_canvas(&canvas, width as usize, height as usize, yuv, subsampling);
            *self.marks.lock().unwrap() = Some(drawn);
            Ok(())
        }

        fn transform_frame_ip(
            &self,
            frame: &mut gst_video::VideoFrameRef<&mut gst::BufferRef>,
        ) -> Result<gst::FlowSuccess, gst::FlowError> {
            let marks = self.marks.lock().unwrap();
            let Some(marks) = marks.as_ref().filter(|m| !m.is_empty()) else {
                return Ok(gst::FlowSuccess::Ok);
            };
            for component in 0..3u32 {
                // In YV12 the V plane comes before U: find each component's plane.
                let plane = frame.format_info().plane()[component as usize];
                let stride = frame.plane_stride()[plane as usize] as usize;
                let data = frame.plane_data_mut(plane).map_err(|_| gst::FlowError::Error)?;
                marks.blend(component as usize, data, stride);
            }
            Ok(gst::FlowSuccess::Ok)
        }
    }
}
