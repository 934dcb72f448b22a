/* The few libx264 calls the `anbx264enc` element needs. x264_param_t and x264_picture_t are only
 * touched here, so the Rust side never depends on their layout (it changes with X264_BUILD).
 *
 * The parameters are set as GStreamer's x264enc sets them (preset, then timebase, frame rate,
 * VUI, rate control, profile), so both elements write the same bitstream from the same
 * settings; tests check that. */
#include <stdint.h>
#include <string.h>
#include <x264.h>

typedef struct {
  int width, height;
  int fps_n, fps_d; /* 0/x: variable frame rate */
  int par_n, par_d;
  const char *preset;  /* x264 preset name */
  const char *profile; /* x264 profile name: baseline, main, high */
  float crf;           /* constant quality, used when bitrate_kbps is 0 */
  int bitrate_kbps;    /* average bitrate, with a VBV of 0.6 s as x264enc's default */
  int keyint_max, threads;
  int rc_lookahead; /* frames the rate control and frame-type decisions look ahead; < 0: the preset's */
  /* VUI, as ISO/IEC 23091-4 codes */
  int colorprim, transfer, colmatrix, fullrange, chroma_loc;
} AnbX264Settings;

typedef struct {
  const uint8_t *data; /* valid until the next call on the encoder */
  int size;
  int64_t pts, dts;
  int keyframe;
  intptr_t id; /* what anb_x264_encode was given with the picture */
} AnbX264Packet;

/* 1 PAL, 2 NTSC, 5 unspecified: the video_format x264enc writes for the same frame size and rate. */
static int video_format(const AnbX264Settings *s) {
  int w = s->width, h = s->height;
  int sd = w == 720 || w == 704 || w == 352;
  if (((h == 576 && sd) || (h == 288 && w == 352)) && s->fps_d == 1 && s->fps_n == 25) return 1;
  if (((h == 480 && sd) || (h == 240 && w == 352)) && s->fps_d == 1001 && (s->fps_n == 30000 || s->fps_n == 24000))
    return 2;
  return 5;
}

/* NULL when a setting is refused (unknown preset or profile, or one x264 cannot open with). */
x264_t *anb_x264_open(const AnbX264Settings *s) {
  x264_param_t p;
  if (x264_param_default_preset(&p, s->preset, NULL) < 0) return NULL;
  p.i_log_level = X264_LOG_ERROR;
  p.b_aud = 0;
  p.b_annexb = 1;
  /* GStreamer timestamps, in nanoseconds */
  p.i_timebase_num = 1;
  p.i_timebase_den = 1000000000;
  p.i_bitdepth = 8;
  p.i_csp = X264_CSP_I420;
  if (s->fps_n > 0 && s->fps_d > 0) {
    p.b_vfr_input = 0;
    p.i_fps_num = s->fps_n;
    p.i_fps_den = s->fps_d;
  } else {
    p.b_vfr_input = 1;
  }
  p.i_keyint_max = s->keyint_max;
  p.i_width = s->width;
  p.i_height = s->height;
  if (s->par_d > 0) {
    p.vui.i_sar_width = s->par_n;
    p.vui.i_sar_height = s->par_d;
  }
  p.vui.i_vidformat = video_format(s);
  p.vui.i_colorprim = s->colorprim;
  p.vui.i_transfer = s->transfer;
  p.vui.i_colmatrix = s->colmatrix;
  p.vui.b_fullrange = s->fullrange;
  p.vui.i_chroma_loc = s->chroma_loc;
  p.analyse.b_psnr = 0;
  if (s->bitrate_kbps > 0) {
    p.rc.i_rc_method = X264_RC_ABR;
    p.rc.i_bitrate = s->bitrate_kbps;
    p.rc.i_vbv_max_bitrate = s->bitrate_kbps;
    p.rc.i_vbv_buffer_size = s->bitrate_kbps * 600 / 1000;
  } else {
    p.rc.i_rc_method = X264_RC_CRF;
    p.rc.f_rf_constant = s->crf;
  }
  p.i_threads = s->threads;
  if (s->rc_lookahead >= 0) p.rc.i_lookahead = s->rc_lookahead;
  if (x264_param_apply_profile(&p, s->profile) < 0) return NULL;
  return x264_encoder_open(&p);
}

void anb_x264_close(x264_t *e) {
  if (e) x264_encoder_close(e);
}

int anb_x264_max_delayed_frames(x264_t *e) { return x264_encoder_maximum_delayed_frames(e); }

int anb_x264_delayed_frames(x264_t *e) { return x264_encoder_delayed_frames(e); }

/* Encodes one I420 picture (planes NULL: drains one delayed picture). x264 copies the picture
 * before returning, so the caller may release it at once. Returns the size of the packet stored
 * in *out, 0 when none is ready yet, negative on errors. */
int anb_x264_encode(x264_t *e, const uint8_t *const planes[3], const int strides[3], int64_t pts, intptr_t id,
                    int force_idr, AnbX264Packet *out) {
  x264_picture_t in, pic_out;
  x264_nal_t *nal;
  int n_nal = 0;
  x264_picture_init(&in);
  x264_picture_t *pic_in = NULL;
  if (planes) {
    in.img.i_csp = X264_CSP_I420;
    in.img.i_plane = 3;
    for (int i = 0; i < 3; i++) {
      in.img.plane[i] = (uint8_t *)planes[i];
      in.img.i_stride[i] = strides[i];
    }
    in.i_type = force_idr ? X264_TYPE_IDR : X264_TYPE_AUTO;
    in.i_pts = pts;
    in.opaque = (void *)id;
    pic_in = &in;
  }
  int size = x264_encoder_encode(e, &nal, &n_nal, pic_in, &pic_out);
  if (size <= 0 || n_nal == 0) return size < 0 ? size : 0;
  /* x264 writes the NAL units of a picture one after the other in one buffer */
  out->data = nal[0].p_payload;
  out->size = size;
  out->pts = pic_out.i_pts;
  out->dts = pic_out.i_dts;
  out->keyframe = pic_out.b_keyframe;
  out->id = (intptr_t)pic_out.opaque;
  return size;
}
