//! The three functions of FFmpeg's libswscale that the scaler needs.
//!
//! Why not GStreamer's `videoscale`: at 1080p -> 720p it costs 3-5x the CPU of swscale (measured:
//! 2.5 s against 0.5 s per 30 s of 1080p30 with a 2-tap filter, 5.8 s with a cubic one), enough to
//! lose the speed comparison with ffmpeg on its own. libswscale is already on every machine that
//! has gstreamer1.0-libav's dependencies; its C API has been stable for over a decade.

use std::os::raw::{c_double, c_int, c_void};

#[repr(C)]
struct SwsContext {
    _private: [u8; 0],
}

#[link(name = "swscale")]
extern "C" {
    fn sws_getContext(
        src_w: c_int,
        src_h: c_int,
        src_format: c_int,
        dst_w: c_int,
        dst_h: c_int,
        dst_format: c_int,
        flags: c_int,
        src_filter: *mut c_void,
        dst_filter: *mut c_void,
        param: *const c_double,
    ) -> *mut SwsContext;
    fn sws_scale(
        c: *mut SwsContext,
        src_slice: *const *const u8,
        src_stride: *const c_int,
        src_slice_y: c_int,
        src_slice_h: c_int,
        dst: *const *mut u8,
        dst_stride: *const c_int,
    ) -> c_int;
    fn sws_freeContext(c: *mut SwsContext);
}

/// `AV_PIX_FMT_YUV420P`, the same layout as GStreamer's I420.
const YUV420P: c_int = 0;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Filter {
    Bilinear = 2,
    Bicubic = 4,
    Lanczos = 0x200,
}

/// Three planes (Y, U, V): start pointers and strides.
pub struct Planes<P> {
    pub data: [P; 3],
    pub stride: [c_int; 3],
}

/// A scaling context for one input size, output size and filter.
pub struct Scaler {
    ctx: *mut SwsContext,
    key: (u32, u32, u32, u32, Filter),
    src_h: u32,
}

// SAFETY: a context is used by one thread at a time (the element holds it under a mutex).
unsafe impl Send for Scaler {}

impl Scaler {
    pub fn new(src_w: u32, src_h: u32, dst_w: u32, dst_h: u32, filter: Filter) -> Option<Self> {
        // SAFETY: plain values in; a null return means the sizes were rejected.
        let ctx = unsafe {
            sws_getContext(
                src_w as c_int,
                src_h as c_int,
                YUV420P,
                dst_w as c_int,
                dst_h as c_int,
                YUV420P,
                filter as c_int,
                std::ptr::null_mut(),
                std::ptr::null_mut(),
                std::ptr::null(),
            )
        };
        (!ctx.is_null()).then_some(Scaler { ctx, key: (src_w, src_h, dst_w, dst_h, filter), src_h })
    }

    pub fn fits(&self, src_w: u32, src_h: u32, dst_w: u32, dst_h: u32, filter: Filter) -> bool {
        self.key == (src_w, src_h, dst_w, dst_h, filter)
    }

    /// Scale the whole source into the destination rectangle.
    ///
    /// # Safety
    /// Each source plane must hold the context's source size (chroma at half size) at its stride,
    /// and each destination plane the destination size, for the whole height.
    pub unsafe fn scale(&mut self, src: &Planes<*const u8>, dst: &Planes<*mut u8>) {
        sws_scale(
            self.ctx,
            src.data.as_ptr(),
            src.stride.as_ptr(),
            0,
            self.src_h as c_int,
            dst.data.as_ptr(),
            dst.stride.as_ptr(),
        );
    }
}

impl Drop for Scaler {
    fn drop(&mut self) {
        // SAFETY: created by sws_getContext, freed once.
        unsafe { sws_freeContext(self.ctx) }
    }
}
