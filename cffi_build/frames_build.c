/*
 * frames_build.c -- fills in msgr2 crc-mode frames laid out by the caller.
 *
 * The Python side appends, for each frame, a 32-byte preamble placeholder,
 * the segments (with a 4-byte placeholder after segment 0 in rev1 when it is
 * not empty) and an epilogue placeholder (rev1: 13 bytes when more than one
 * segment; rev0: 17 bytes always), all contiguous in one buffer. One call then
 * writes every preamble (with its crc), segment crc and epilogue, so a batch
 * of messages costs one native call instead of several per message.
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
    if (lens[0] > 0) size += 4;
    if (nseg > 1) size += 13;
  } else {
    size += 17;
  }
  return size;
}

static void write_preamble(char *p, int tag, int nseg, const int64_t *lens) {
  static const uint16_t align[4] = {8, 8, 8, 4096};
  memset(p, 0, 32);
  p[0] = (char)tag;
  p[1] = (char)nseg;
  for (int i = 0; i < nseg; i++) {
    put_le32(p + 2 + 6 * i, (uint32_t)lens[i]);
    put_le16(p + 6 + 6 * i, tag == 17 ? align[i] : 8);
  }
  put_le32(p + 28, msgr_crc32c(0, p, 28));
}

static int64_t fill_one(char *buf, int64_t buflen, const int64_t *d, int rev1) {
  int64_t off = d[0];
  int tag = (int)d[1];
  const int64_t *lens = d + 2;
  int nseg = 4;
  uint32_t crc[4] = {0, 0, 0, 0};
  for (int i = 0; i < 4; i++)
    if (lens[i] < 0 || lens[i] > 0xffffffffLL) return -1;
  while (nseg > 1 && lens[nseg - 1] == 0) nseg--;
  if (off < 0 || tag < 1 || tag > 255 || off + frame_size(lens, nseg, rev1) > buflen)
    return -1;
  char *p = buf + off + 32;
  for (int i = 0; i < nseg; i++) {
    crc[i] = msgr_crc32c(0xffffffffu, p, (size_t)lens[i]);
    p += lens[i];
    if (rev1 && i == 0 && lens[0] > 0) {
      put_le32(p, crc[0]);
      p += 4;
    }
  }
  write_preamble(buf + off, tag, nseg, lens);
  if (rev1) {
    if (nseg > 1) {
      p[0] = 0x0e;
      for (int i = 1; i < 4; i++) put_le32(p + 1 + 4 * (i - 1), i < nseg ? crc[i] : 0);
    }
  } else {
    p[0] = 0;
    for (int i = 0; i < 4; i++) put_le32(p + 1 + 4 * i, i < nseg ? crc[i] : 0);
  }
  return 0;
}

int64_t msgr_frame_fill(char *buf, int64_t buflen, const int64_t *desc, int64_t n, int rev1) {
  for (int64_t k = 0; k < n; k++) {
    if (fill_one(buf, buflen, desc + 6 * k, rev1) != 0) return -1 - k;
  }
  return 0;
}
