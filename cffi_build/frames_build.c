/*
 * frames_build.c -- fills in msgr2 crc-mode frames laid out by the caller.
 *
 * The Python side appends, for each MESSAGE frame, a 32-byte preamble
 * placeholder, the 41-byte header2, in rev1 a 4-byte placeholder for the
 * header's crc, the front, middle and data segments and an epilogue
 * placeholder (rev1: 13 bytes unless all three payload segments are empty;
 * rev0: 17 bytes always), frame after frame from offset 0 of one buffer. One
 * call then writes every preamble (with its crc), segment crc and epilogue, so
 * a batch of messages costs one native call instead of several per message.
 * Only the three payload lengths per frame cross the boundary: the offsets
 * follow from them.
 */
#include <stdint.h>
#include <stddef.h>
#include <string.h>

#include "msgr_native.h"

static void put_le32(char *p, uint32_t v) {
  p[0] = (char)(v & 0xff);
  p[1] = (char)((v >> 8) & 0xff);
  p[2] = (char)((v >> 16) & 0xff);
  p[3] = (char)((v >> 24) & 0xff);
}

static void put_le16(char *p, uint16_t v) {
  p[0] = (char)(v & 0xff);
  p[1] = (char)((v >> 8) & 0xff);
}

/* Size of the frame described by lens[4] in the given revision. */
static int64_t frame_size(const int64_t *lens, int nseg, int rev1) {
  int64_t size = 32 + lens[0] + lens[1] + lens[2] + lens[3];
  if (rev1) {
    size += 4;   /* the header's crc */
    if (nseg > 1) size += 13;
  } else {
    size += 17;
  }
  return size;
}

/* A MESSAGE preamble: segment alignments as Ceph sends them (data: 4096). */
static void write_preamble(char *p, int nseg, const int64_t *lens) {
  static const uint16_t align[4] = {8, 8, 8, 4096};
  memset(p, 0, 32);
  p[0] = (char)MSGR_TAG_MESSAGE;
  p[1] = (char)nseg;
  for (int i = 0; i < nseg; i++) {
    put_le32(p + 2 + 6 * i, (uint32_t)lens[i]);
    put_le16(p + 6 + 6 * i, align[i]);
  }
  put_le32(p + 28, msgr_crc32c(0, p, 28));
}

/* Fills the frame at buf[off:] with segment lengths lens[4] (lens[0] is the header). */
static void fill_one(char *buf, int64_t off, const int64_t *lens, int nseg, int rev1) {
  uint32_t crc[4] = {0, 0, 0, 0};
  char *p = buf + off + 32;
  for (int i = 0; i < nseg; i++) {
    crc[i] = msgr_crc32c(0xffffffffu, p, (size_t)lens[i]);
    p += lens[i];
    if (rev1 && i == 0) {
      put_le32(p, crc[0]);
      p += 4;
    }
  }
  write_preamble(buf + off, nseg, lens);
  if (rev1) {
    if (nseg > 1) {
      p[0] = 0x0e;
      for (int i = 1; i < 4; i++) put_le32(p + 1 + 4 * (i - 1), i < nseg ? crc[i] : 0);
    }
  } else {
    p[0] = 0;
    for (int i = 0; i < 4; i++) put_le32(p + 1 + 4 * i, i < nseg ? crc[i] : 0);
  }
}

int64_t msgr_fill_message_frames(char *buf, int64_t buflen, const int64_t *lens, int64_t n,
                                 int rev1) {
  int64_t off = 0;
  for (int64_t k = 0; k < n; k++) {
    int64_t seg[4] = {MSGR_HEADER2_SIZE, lens[3 * k], lens[3 * k + 1], lens[3 * k + 2]};
    int nseg = 4;
    for (int i = 1; i < 4; i++)
      if (seg[i] < 0 || seg[i] > 0xffffffffLL) return -1 - k;
    while (nseg > 1 && seg[nseg - 1] == 0) nseg--;
    int64_t size = frame_size(seg, nseg, rev1);
    if (size > buflen - off) return -1 - k;
    fill_one(buf, off, seg, nseg, rev1);
    off += size;
  }
  return off == buflen ? 0 : -1 - n;   /* the frames fill buf exactly, or a length lied */
}
