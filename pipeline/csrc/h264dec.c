/* The few libavcodec calls the `anbh264dec` element needs, with struct fields read here in C so
 * the Rust side never depends on FFmpeg's struct layouts. */
#include <libavcodec/avcodec.h>
#include <libavutil/frame.h>
#include <string.h>

typedef struct {
  AVCodecContext *ctx;
  AVPacket *pkt;
} AnbDecoder;

typedef struct {
  int width, height, format;
  int64_t pts;
  const uint8_t *data[3];
  int linesize[3];
} AnbFrameInfo;

AnbDecoder *anb_h264_open(int threads) {
  const AVCodec *codec = avcodec_find_decoder(AV_CODEC_ID_H264);
  if (!codec) return NULL;
  AnbDecoder *d = av_mallocz(sizeof(*d));
  if (!d) return NULL;
  d->ctx = avcodec_alloc_context3(codec);
  d->pkt = av_packet_alloc();
  if (!d->ctx || !d->pkt) goto fail;
  d->ctx->thread_count = threads;
  d->ctx->thread_type = FF_THREAD_FRAME | FF_THREAD_SLICE; /* libavcodec's default, as avdec_h264 */
  if (avcodec_open2(d->ctx, codec, NULL) < 0) goto fail;
  return d;
fail:
  avcodec_free_context(&d->ctx);
  av_packet_free(&d->pkt);
  av_free(d);
  return NULL;
}

void anb_h264_close(AnbDecoder *d) {
  if (!d) return;
  avcodec_free_context(&d->ctx);
  av_packet_free(&d->pkt);
  av_free(d);
}

/* 0 when accepted, 1 when outputs must be received first (EAGAIN), negative on errors.
 * size 0 signals the end of the stream. */
int anb_h264_send(AnbDecoder *d, const uint8_t *data, int size, int64_t pts) {
  int ret;
  if (size == 0) {
    ret = avcodec_send_packet(d->ctx, NULL);
  } else {
    av_packet_unref(d->pkt);
    if ((ret = av_new_packet(d->pkt, size)) < 0) return ret;
    memcpy(d->pkt->data, data, size);
    d->pkt->pts = pts;
    ret = avcodec_send_packet(d->ctx, d->pkt);
  }
  if (ret == AVERROR(EAGAIN)) return 1;
  if (ret == AVERROR_EOF) return 0;
  return ret;
}

/* 0 with *out set to a frame the caller frees with anb_h264_frame_free, 1 when no frame is ready
 * (or the stream ended), negative on errors. */
int anb_h264_receive(AnbDecoder *d, AVFrame **out) {
  AVFrame *f = av_frame_alloc();
  if (!f) return AVERROR(ENOMEM);
  int ret = avcodec_receive_frame(d->ctx, f);
  if (ret == 0) {
    *out = f;
    return 0;
  }
  av_frame_free(&f);
  if (ret == AVERROR(EAGAIN) || ret == AVERROR_EOF) return 1;
  return ret;
}

void anb_h264_flush(AnbDecoder *d) { avcodec_flush_buffers(d->ctx); }

/* 0 for 8-bit 4:2:0 (limited or full range: the range is in the caps, from the SPS), -1 for
 * anything else. */
static int format_of(int f) { return f == AV_PIX_FMT_YUV420P || f == AV_PIX_FMT_YUVJ420P ? 0 : -1; }

void anb_h264_frame_info(const AVFrame *f, AnbFrameInfo *info) {
  info->width = f->width;
  info->height = f->height;
  info->format = format_of(f->format);
  info->pts = f->pts;
  for (int i = 0; i < 3; i++) {
    info->data[i] = f->data[i];
    info->linesize[i] = f->linesize[i];
  }
}

void anb_h264_frame_free(AVFrame *f) { av_frame_free(&f); }
