//! `anbscale`: an I420 scaler element on libswscale.
//!
//! It scales to a fixed frame with square pixels in one pass, fitting (with black bars),
//! filling (cropping) or stretching, by pointing swscale at the right part of the input and the
//! right rectangle of the output, so no intermediate frame is made.

use std::sync::{LazyLock, Mutex, Once};

use super::swscale::{self, Filter, Planes};
use gst::glib;
use gst::prelude::*;
use gst::subclass::prelude::*;
use gst_base::subclass::prelude::*;
use gst_video::subclass::prelude::*;
use gst_video::prelude::*;

pub const ELEMENT_NAME: &str = "anbscale";

/// Register the element with GStreamer (once per process).
pub fn register() -> Result<(), glib::BoolError> {
    static ONCE: Once = Once::new();
    let mut result = Ok(());
    ONCE.call_once(|| {
        result = gst::Element::register(None, ELEMENT_NAME, gst::Rank::NONE, Scaler::static_type());
    });
    result
}

glib::wrapper! {
    pub struct Scaler(ObjectSubclass<imp::Scaler>)
        @extends gst_video::VideoFilter, gst_base::BaseTransform, gst::Element, gst::Object;
}

/// Where the scaled picture goes inside the output frame, and which part of the input it shows.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Geometry {
    /// Source crop (x, y, w, h) in input pixels, even-aligned.
    pub crop: (u32, u32, u32, u32),
    /// Destination rectangle (x, y, w, h) in output pixels, even-aligned.
    pub rect: (u32, u32, u32, u32),
}

/// `mode`: "fit", "fill" or "stretch". `dar` is the input's display aspect ratio.
pub fn geometry(mode: &str, in_w: u32, in_h: u32, dar: f64, out_w: u32, out_h: u32) -> Geometry {
    let out_ar = out_w as f64 / out_h as f64;
    let full_crop = (0, 0, in_w, in_h);
    let even = |v: f64| ((v / 2.0).round() as u32 * 2).max(2);
    match mode {
        "fit" if dar > out_ar + 1e-6 => {
            let h = even(out_w as f64 / dar).min(out_h);
            Geometry { crop: full_crop, rect: (0, even((out_h - h) as f64 / 2.0).min(out_h - h), out_w, h) }
        }
        "fit" if dar < out_ar - 1e-6 => {
            let w = even(out_h as f64 * dar).min(out_w);
            Geometry { crop: full_crop, rect: (even((out_w - w) as f64 / 2.0).min(out_w - w), 0, w, out_h) }
        }
        "fill" => {
            // Keep the middle of the input that has the output's display aspect ratio.
            let par = dar / (in_w as f64 / in_h as f64);
            let crop = if dar > out_ar {
                let w = even(in_h as f64 * out_ar / par).min(in_w);
                (even((in_w - w) as f64 / 2.0).min(in_w - w), 0, w, in_h)
            } else {
                let h = even(in_w as f64 * par / out_ar).min(in_h);
                (0, even((in_h - h) as f64 / 2.0).min(in_h - h), in_w, h)
            };
            Geometry { crop, rect: (0, 0, out_w, out_h) }
        }
        _ => Geometry { crop: full_crop, rect: (0, 0, out_w, out_h) },
    }
}

mod imp {
    use super::*;

    #[derive(Debug, Clone)]
    struct Settings {
        width: u32,
        height: u32,
        mode: String,
        method: String,
    }

    impl Default for Settings {
        fn default() -> Self {
            Settings { width: 1280, height: 720, mode: "fit".into(), method: "bicubic".into() }
        }
    }

    #[derive(Default)]
    pub struct Scaler {
        settings: Mutex<Settings>,
        /// Rebuilt when the input size changes.
        scaler: Mutex<Option<swscale::Scaler>>,
    }

    #[glib::object_subclass]
    impl ObjectSubclass for Scaler {
        const NAME: &'static str = "AnbScale";
        type Type = super::Scaler;
        type ParentType = gst_video::VideoFilter;
    }

    impl ObjectImpl for Scaler {
        fn properties() -> &'static [glib::ParamSpec] {
            static PROPS: LazyLock<Vec<glib::ParamSpec>> = LazyLock::new(|| {
                vec![
                    glib::ParamSpecUInt::builder("width").minimum(2).maximum(16384).default_value(1280).build(),
                    glib::ParamSpecUInt::builder("height").minimum(2).maximum(16384).default_value(720).build(),
                    glib::ParamSpecString::builder("mode").default_value(Some("fit")).build(),
                    glib::ParamSpecString::builder("method").default_value(Some("bicubic")).build(),
                ]
            });
            PROPS.as_ref()
        }

        fn set_property(&self, _id: usize, value: &glib::Value, pspec: &glib::ParamSpec) {
            let mut s = self.settings.lock().unwrap();
            match pspec.name() {
                "width" => s.width = value.get().expect("type checked by GObject"),
                "height" => s.height = value.get().expect("type checked by GObject"),
                "mode" => s.mode = value.get::<Option<String>>().ok().flatten().unwrap_or_else(|| "fit".into()),
                "method" => s.method = value.get::<Option<String>>().ok().flatten().unwrap_or_else(|| "bicubic".into()),
                _ => {}
            }
        }

        fn property(&self, _id: usize, pspec: &glib::ParamSpec) -> glib::Value {
            let s = self.settings.lock().unwrap();
            match pspec.name() {
                "width" => s.width.to_value(),
                "height" => s.height.to_value(),
                "mode" => s.mode.to_value(),
                _ => s.method.to_value(),
            }
        }
    }

    impl GstObjectImpl for Scaler {}

    impl ElementImpl for Scaler {
        fn metadata() -> Option<&'static gst::subclass::ElementMetadata> {
            static META: LazyLock<gst::subclass::ElementMetadata> = LazyLock::new(|| {
                gst::subclass::ElementMetadata::new(
                    "ANB scaler",
                    "Filter/Converter/Video/Scaler",
                    "Scales I420 video to a fixed frame (fit, fill or stretch) with SIMD convolution",
                    "ANB Video",
                )
            });
            Some(&*META)
        }

        fn pad_templates() -> &'static [gst::PadTemplate] {
            static TEMPLATES: LazyLock<Vec<gst::PadTemplate>> = LazyLock::new(|| {
                let caps = gst_video::VideoCapsBuilder::new().format(gst_video::VideoFormat::I420).build();
                vec![
                    gst::PadTemplate::new("src", gst::PadDirection::Src, gst::PadPresence::Always, &caps).unwrap(),
                    gst::PadTemplate::new("sink", gst::PadDirection::Sink, gst::PadPresence::Always, &caps).unwrap(),
                ]
            });
            TEMPLATES.as_ref()
        }
    }

    impl BaseTransformImpl for Scaler {
        const MODE: gst_base::subclass::BaseTransformMode = gst_base::subclass::BaseTransformMode::NeverInPlace;
        // An input that already has the output's size and square pixels goes through untouched.
        const PASSTHROUGH_ON_SAME_CAPS: bool = true;
        const TRANSFORM_IP_ON_PASSTHROUGH: bool = false;

        fn transform_caps(
            &self,
            direction: gst::PadDirection,
            caps: &gst::Caps,
            filter: Option<&gst::Caps>,
        ) -> Option<gst::Caps> {
            let s = self.settings.lock().unwrap().clone();
            let mut out = gst::Caps::new_empty();
            {
                let out = out.get_mut().unwrap();
                for structure in caps.iter() {
                    let mut st = structure.to_owned();
                    if direction == gst::PadDirection::Sink {
                        st.set("width", s.width as i32);
                        st.set("height", s.height as i32);
                        st.set("pixel-aspect-ratio", gst::Fraction::new(1, 1));
                    } else {
                        st.set("width", gst::IntRange::new(1, i32::MAX));
                        st.set("height", gst::IntRange::new(1, i32::MAX));
                        st.set("pixel-aspect-ratio", gst::FractionRange::new(gst::Fraction::new(1, i32::MAX), gst::Fraction::new(i32::MAX, 1)));
                    }
                    out.append_structure(st);
                }
            }
            Some(match filter {
                Some(f) => f.intersect_with_mode(&out, gst::CapsIntersectMode::First),
                None => out,
            })
        }
    }

    impl VideoFilterImpl for Scaler {
        fn transform_frame(
            &self,
            inframe: &gst_video::VideoFrameRef<&gst::BufferRef>,
            outframe: &mut gst_video::VideoFrameRef<&mut gst::BufferRef>,
        ) -> Result<gst::FlowSuccess, gst::FlowError> {
            let s = self.settings.lock().unwrap().clone();
            let info = inframe.info();
            let par = info.par();
            let dar = (info.width() as f64 * par.numer() as f64) / (info.height() as f64 * par.denom() as f64);
            let out_info = outframe.info().clone();
            let g = geometry(&s.mode, info.width(), info.height(), dar, out_info.width(), out_info.height());
            let filter = match s.method.as_str() {
                "bilinear" => Filter::Bilinear,
                "lanczos" => Filter::Lanczos,
                _ => Filter::Bicubic,
            };
            let (cx, cy, cw, ch) = g.crop;
            let (rx, ry, rw, rh) = g.rect;
            let mut slot = self.scaler.lock().unwrap();
            if !slot.as_ref().is_some_and(|sc| sc.fits(cw, ch, rw, rh, filter)) {
                *slot = swscale::Scaler::new(cw, ch, rw, rh, filter);
            }
            let Some(scaler) = slot.as_mut() else {
                gst::element_imp_error!(self, gst::CoreError::Failed, ["swscale rejected {cw}x{ch} -> {rw}x{rh}"]);
                return Err(gst::FlowError::Error);
            };

            let mut src = Planes { data: [std::ptr::null(); 3], stride: [0; 3] };
            let mut dst = Planes { data: [std::ptr::null_mut(); 3], stride: [0; 3] };
            for plane in 0..3usize {
                // Chroma planes of I420 are half size in both directions; all offsets are even.
                let shift = if plane == 0 { 0 } else { 1 };
                let in_stride = inframe.plane_stride()[plane] as usize;
                let in_data = inframe.plane_data(plane as u32).map_err(|_| gst::FlowError::Error)?;
                let offset = (cy >> shift) as usize * in_stride + (cx >> shift) as usize;
                src.data[plane] = in_data[offset..].as_ptr();
                src.stride[plane] = in_stride as i32;

                let out_stride = outframe.plane_stride()[plane] as usize;
                let (out_w, out_h) = (outframe.comp_width(plane as u32) as usize, outframe.comp_height(plane as u32) as usize);
                let out_data = outframe.plane_data_mut(plane as u32).map_err(|_| gst::FlowError::Error)?;
                let rect = ((rx >> shift) as usize, (ry >> shift) as usize, (rw >> shift) as usize, (rh >> shift) as usize);
                fill_outside(out_data, out_stride, out_w, out_h, rect, if plane == 0 { 16 } else { 128 });
                dst.data[plane] = out_data[rect.1 * out_stride + rect.0..].as_mut_ptr();
                dst.stride[plane] = out_stride as i32;
            }
            // SAFETY: the crop and the rectangle lie inside the mapped frames (checked by the
            // geometry, which clamps to the frame sizes), and the frames stay mapped until we
            // return.
            unsafe { scaler.scale(&src, &dst) };
            Ok(gst::FlowSuccess::Ok)
        }
    }

    /// Paint the bars: everything of the plane outside `rect`.
    fn fill_outside(data: &mut [u8], stride: usize, w: usize, h: usize, rect: (usize, usize, usize, usize), value: u8) {
        let (rx, ry, rw, rh) = rect;
        for y in 0..h {
            let row = &mut data[y * stride..y * stride + w];
            if y < ry || y >= ry + rh {
                row.fill(value);
            } else {
                row[..rx].fill(value);
                row[rx + rw..].fill(value);
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn fit_pillarboxes_and_letterboxes_with_even_bars() {
        let g = geometry("fit", 640, 480, 4.0 / 3.0, 1280, 720);
        assert_eq!(g.rect, (160, 0, 960, 720));
        let g = geometry("fit", 2560, 1080, 2560.0 / 1080.0, 1280, 720);
        assert_eq!(g.rect, (0, 90, 1280, 540));
        let g = geometry("fit", 1920, 1080, 16.0 / 9.0, 1280, 720);
        assert_eq!(g.rect, (0, 0, 1280, 720));
    }

    #[test]
    fn fill_crops_the_middle() {
        let g = geometry("fill", 640, 480, 4.0 / 3.0, 1280, 720);
        assert_eq!(g.rect, (0, 0, 1280, 720));
        assert_eq!(g.crop, (0, 60, 640, 360));
    }
}
