//! The C shim of `csrc/h264dec.c` over libavcodec (struct fields are read in C, so nothing here
//! depends on FFmpeg's struct layouts).

use std::os::raw::c_int;

#[repr(C)]
pub struct AnbDecoder {
    _private: [u8; 0],
}

#[repr(C)]
pub struct AvFrame {
    _private: [u8; 0],
}

#[repr(C)]
#[derive(Debug)]
pub struct FrameInfo {
    pub width: c_int,
    pub height: c_int,
    /// 0: 8-bit 4:2:0, -1: anything else.
    pub format: c_int,
    pub pts: i64,
    pub data: [*const u8; 3],
    pub linesize: [c_int; 3],
}

impl Default for FrameInfo {
    fn default() -> Self {
        FrameInfo { width: 0, height: 0, format: -1, pts: 0, data: [std::ptr::null(); 3], linesize: [0; 3] }
    }
}

extern "C" {
    pub fn anb_h264_open(threads: c_int) -> *mut AnbDecoder;
    pub fn anb_h264_close(d: *mut AnbDecoder);
    pub fn anb_h264_send(d: *mut AnbDecoder, data: *const u8, size: c_int, pts: i64) -> c_int;
    pub fn anb_h264_receive(d: *mut AnbDecoder, out: *mut *mut AvFrame) -> c_int;
    pub fn anb_h264_flush(d: *mut AnbDecoder);
    pub fn anb_h264_frame_info(f: *const AvFrame, info: *mut FrameInfo);
    pub fn anb_h264_frame_free(f: *mut AvFrame);
}

/// An open libavcodec H.264 decoder.
pub struct Decoder(*mut AnbDecoder);

// SAFETY: the context is used by one thread at a time (the element's state mutex).
unsafe impl Send for Decoder {}

/// What a send or receive returned.
pub enum Status {
    Done,
    /// Outputs must be received first (send), or none is ready (receive).
    Again,
    Error(c_int),
}

impl Decoder {
    pub fn open(threads: usize) -> Option<Self> {
        // SAFETY: plain constructor; null on failure.
        let ptr = unsafe { anb_h264_open(threads.clamp(1, 16) as c_int) };
        (!ptr.is_null()).then_some(Decoder(ptr))
    }

    /// One access unit; an empty slice ends the stream (the decoder then drains).
    pub fn send(&mut self, data: &[u8], pts: i64) -> Status {
        let Ok(size) = c_int::try_from(data.len()) else { return Status::Error(-1) };
        // SAFETY: data is valid for size bytes; the shim copies it.
        match unsafe { anb_h264_send(self.0, data.as_ptr(), size, pts) } {
            0 => Status::Done,
            1 => Status::Again,
            e => Status::Error(e),
        }
    }

    pub fn receive(&mut self) -> Result<Option<Frame>, c_int> {
        let mut out = std::ptr::null_mut();
        // SAFETY: on 0 the shim stores a frame we now own.
        match unsafe { anb_h264_receive(self.0, &mut out) } {
            0 => Ok(Some(Frame(out))),
            1 => Ok(None),
            e => Err(e),
        }
    }

    pub fn flush(&mut self) {
        // SAFETY: valid context.
        unsafe { anb_h264_flush(self.0) }
    }
}

impl Drop for Decoder {
    fn drop(&mut self) {
        // SAFETY: owned, closed once.
        unsafe { anb_h264_close(self.0) }
    }
}

/// A decoded picture, reference-counted by libavcodec: its planes stay valid until it is dropped,
/// even while the decoder keeps using the picture as a reference (it never writes to it again).
pub struct Frame(*mut AvFrame);

// SAFETY: an AVFrame reference may be released from any thread.
unsafe impl Send for Frame {}
unsafe impl Sync for Frame {}

impl Frame {
    pub fn info(&self) -> FrameInfo {
        let mut info = FrameInfo::default();
        // SAFETY: valid frame, plain struct out-parameter.
        unsafe { anb_h264_frame_info(self.0, &mut info) };
        info
    }
}

impl Drop for Frame {
    fn drop(&mut self) {
        // SAFETY: owned, freed once.
        unsafe { anb_h264_frame_free(self.0) }
    }
}
