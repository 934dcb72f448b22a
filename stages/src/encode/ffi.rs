//! The C shim of `csrc/x264enc.c` over libx264 (x264's structs are filled in C, so nothing here
//! depends on their layout).

use super::{Preset, Profile};
use std::ffi::CString;
use std::os::raw::{c_char, c_float, c_int};

#[repr(C)]
struct X264 {
    _private: [u8; 0],
}

#[repr(C)]
struct RawParams {
    width: c_int,
    height: c_int,
    fps_n: c_int,
    fps_d: c_int,
    par_n: c_int,
    par_d: c_int,
    preset: *const c_char,
    profile: *const c_char,
    crf: c_float,
    bitrate_kbps: c_int,
    keyint_max: c_int,
    threads: c_int,
    rc_lookahead: c_int,
    colorprim: c_int,
    transfer: c_int,
    colmatrix: c_int,
    fullrange: c_int,
    chroma_loc: c_int,
}

#[repr(C)]
struct RawPacket {
    data: *const u8,
    size: c_int,
    pts: i64,
    dts: i64,
    keyframe: c_int,
    id: isize,
}

extern "C" {
    fn anb_x264_open(settings: *const RawParams) -> *mut X264;
    fn anb_x264_close(e: *mut X264);
    fn anb_x264_max_delayed_frames(e: *mut X264) -> c_int;
    fn anb_x264_delayed_frames(e: *mut X264) -> c_int;
    fn anb_x264_encode(
        e: *mut X264,
        planes: *const *const u8,
        strides: *const c_int,
        pts: i64,
        id: isize,
        force_idr: c_int,
        out: *mut RawPacket,
    ) -> c_int;
}

/// What the encoder is opened with; the VUI fields are ISO/IEC 23091-4 codes.
#[derive(Debug, Clone, PartialEq)]
pub struct Params {
    pub width: u32,
    pub height: u32,
    /// (0, 1) for a variable frame rate.
    pub fps: (i32, i32),
    pub par: (i32, i32),
    pub preset: Preset,
    pub profile: Profile,
    /// Constant quality; used when `bitrate_kbps` is 0.
    pub crf: f32,
    pub bitrate_kbps: u32,
    pub keyint_max: u32,
    pub threads: u32,
    /// Frames x264's rate control and frame-type decisions look ahead; `None`: the preset's.
    pub rc_lookahead: Option<u32>,
    pub colorprim: i32,
    pub transfer: i32,
    pub colmatrix: i32,
    pub fullrange: bool,
    pub chroma_loc: i32,
}

/// One encoded picture, borrowed from the encoder until its next call.
pub struct Packet<'a> {
    pub data: &'a [u8],
    pub pts: i64,
    pub dts: i64,
    pub keyframe: bool,
    pub id: isize,
}

/// An open libx264 encoder.
pub struct Encoder(*mut X264);

// SAFETY: x264 handles are used by one thread at a time (the element's state mutex).
unsafe impl Send for Encoder {}

impl Encoder {
    /// `None` when x264 refuses the settings.
    pub fn open(s: &Params) -> Option<Self> {
        let preset = CString::new(s.preset.as_str()).ok()?;
        let profile = CString::new(s.profile.as_str()).ok()?;
        let raw = RawParams {
            width: s.width as c_int,
            height: s.height as c_int,
            fps_n: s.fps.0,
            fps_d: s.fps.1,
            par_n: s.par.0,
            par_d: s.par.1,
            preset: preset.as_ptr(),
            profile: profile.as_ptr(),
            crf: s.crf,
            bitrate_kbps: s.bitrate_kbps as c_int,
            keyint_max: s.keyint_max as c_int,
            threads: s.threads as c_int,
            rc_lookahead: s.rc_lookahead.map_or(-1, |frames| frames as c_int),
            colorprim: s.colorprim,
            transfer: s.transfer,
            colmatrix: s.colmatrix,
            fullrange: s.fullrange as c_int,
            chroma_loc: s.chroma_loc,
        };
        // SAFETY: the strings outlive the call; x264 copies what it keeps.
        let ptr = unsafe { anb_x264_open(&raw) };
        (!ptr.is_null()).then_some(Encoder(ptr))
    }

    /// Pictures x264 may hold before the first packet comes out (for the latency query).
    pub fn max_delayed_frames(&mut self) -> u32 {
        // SAFETY: valid handle.
        unsafe { anb_x264_max_delayed_frames(self.0) }.max(0) as u32
    }

    /// Pictures given but not yet returned as packets.
    pub fn delayed_frames(&mut self) -> u32 {
        // SAFETY: valid handle.
        unsafe { anb_x264_delayed_frames(self.0) }.max(0) as u32
    }

    /// Encodes one I420 picture; x264 has copied it when this returns. `None` as the picture
    /// drains one held picture. Returns the packet that came out, if one did.
    pub fn encode(
        &mut self,
        picture: Option<([*const u8; 3], [i32; 3])>,
        pts: i64,
        id: isize,
        force_idr: bool,
    ) -> Result<Option<Packet<'_>>, i32> {
        let mut out = RawPacket { data: std::ptr::null(), size: 0, pts: 0, dts: 0, keyframe: 0, id: 0 };
        let (planes, strides) = match &picture {
            Some((planes, strides)) => (planes.as_ptr(), strides.as_ptr()),
            None => (std::ptr::null(), std::ptr::null()),
        };
        // SAFETY: the planes are readable for the strides and height the encoder was opened
        // with (the caller maps a frame of the negotiated format); x264 copies them.
        let size = unsafe { anb_x264_encode(self.0, planes, strides, pts, id, force_idr as c_int, &mut out) };
        match size {
            s if s < 0 => Err(s),
            0 => Ok(None),
            s => Ok(Some(Packet {
                // SAFETY: x264 keeps the payload valid until the next call on this encoder,
                // which the borrow of `self` prevents.
                data: unsafe { std::slice::from_raw_parts(out.data, s as usize) },
                pts: out.pts,
                dts: out.dts,
                keyframe: out.keyframe != 0,
                id: out.id,
            })),
        }
    }
}

impl Drop for Encoder {
    fn drop(&mut self) {
        // SAFETY: owned, closed once.
        unsafe { anb_x264_close(self.0) }
    }
}
