//! The scaler behind a resize: the 3:2 bicubic kernel where it applies (1080p to 720p, the
//! common case), libswscale for every other size and filter.

use super::swscale::{self, Filter, Planes};
use super::three_halves::ThreeHalves;

pub enum Resampler {
    ThreeHalves(ThreeHalves),
    Swscale(swscale::Scaler),
}

impl Resampler {
    /// A scaler for these sizes and filter, or `None` when swscale rejects them.
    pub fn new(src_w: u32, src_h: u32, dst_w: u32, dst_h: u32, filter: Filter) -> Option<Self> {
        if filter == Filter::Bicubic {
            if let Some(fast) = ThreeHalves::new(src_w, src_h, dst_w, dst_h) {
                return Some(Resampler::ThreeHalves(fast));
            }
        }
        swscale::Scaler::new(src_w, src_h, dst_w, dst_h, filter).map(Resampler::Swscale)
    }

    pub fn fits(&self, src_w: u32, src_h: u32, dst_w: u32, dst_h: u32, filter: Filter) -> bool {
        match self {
            Resampler::ThreeHalves(s) => filter == Filter::Bicubic && s.fits(src_w, src_h, dst_w, dst_h),
            Resampler::Swscale(s) => s.fits(src_w, src_h, dst_w, dst_h, filter),
        }
    }

    /// Scale the whole source into the destination rectangle.
    ///
    /// # Safety
    /// Each source plane must hold the source size (chroma at half size) at its stride, and each
    /// destination plane the destination size, for the whole height.
    pub unsafe fn scale(&mut self, src: &Planes<*const u8>, dst: &Planes<*mut u8>) {
        match self {
            Resampler::ThreeHalves(s) => s.scale(src, dst),
            Resampler::Swscale(s) => s.scale(src, dst),
        }
    }
}
