/*
 * frames_scan.c -- validate and index msgr2 crc-mode frames in one call.
 *
 * Wire format (all little-endian):
 *   preamble (32): u8 tag; u8 num_segments; 4 x {le32 len; le16 align};
 *                  u8 reserved[2]; le32 crc32c(0, preamble[0:28])
 *   rev1 (msgr2.1): preamble | seg0 | le32 crc(seg0) if len0 > 0 |
 *                   seg1..seg[n-1] | epilogue (13) if n > 1:
 *                   u8 late_status; le32 crc[3] (segments 1..3)
 *   rev0 (msgr2.0): preamble | seg0..seg[n-1] | epilogue (17) always:
 *                   u8 late_flags; le32 crc[4]
 * Segment crcs are crc32c(0xFFFFFFFF, segment).  Checks follow Ceph's
 * FrameAssembler: preamble crc, segment count, empty last segment, then
 * (ours) the size limit; all segment crcs before the late status/flags.
 *
 * Safety: every read is at an offset in [start, end); sizes and offsets are
 * int64_t (four u32 lengths plus overhead cannot overflow).  The function
 * keeps no state and touches no shared memory other than its arguments, so
 * there is no memory-ordering concern: it may run concurrently from many
 * threads (cffi releases the GIL around the call) as long as no thread
 * writes the scanned bytes or the output arrays meanwhile.
 */
#include <stddef.h>
#include <stdint.h>

#include "msgr_native.h"

#define FS_PREAMBLE_SIZE 32
#define FS_PREAMBLE_CRC_SPAN 28
#define FS_CRC_SIZE 4
#define FS_MAX_SEGMENTS 4
#define FS_EPILOGUE_REV1 13
#define FS_EPILOGUE_REV0 17
#define FS_LATE_STATUS_MASK 0x0fu
#define FS_LATE_STATUS_COMPLETE 0x0eu
#define FS_LATE_STATUS_ABORTED 0x01u
#define FS_LATE_FLAG_ABORTED 0x01u

struct fs_frame {
    int64_t tag;
    int64_t nseg;
    int64_t len[FS_MAX_SEGMENTS];
    int64_t size;   /* total on-wire size */
};

static uint32_t fs_load_le32(const unsigned char *p)
{
    return (uint32_t)p[0] | ((uint32_t)p[1] << 8) |
           ((uint32_t)p[2] << 16) | ((uint32_t)p[3] << 24);
}

static int64_t fs_onwire_size(const struct fs_frame *f, int rev1)
{
    int64_t size = FS_PREAMBLE_SIZE;

    for (int64_t i = 0; i < f->nseg; i++)
        size += f->len[i];
    if (!rev1)
        return size + FS_EPILOGUE_REV0;
    if (f->len[0] > 0)
        size += FS_CRC_SIZE;
    if (f->nseg > 1)
        size += FS_EPILOGUE_REV1;
    return size;
}

/* Decodes and checks the 32-byte preamble at p; fills f on success. */
static int fs_parse_preamble(const unsigned char *p, int rev1,
                             int64_t max_segment, struct fs_frame *f)
{
    if (msgr_crc32c(0, (const char *)p, FS_PREAMBLE_CRC_SPAN) !=
        fs_load_le32(p + FS_PREAMBLE_CRC_SPAN))
        return MSGR_SCAN_BAD_PREAMBLE_CRC;
    f->tag = p[0];
    f->nseg = p[1];
    if (f->nseg < 1 || f->nseg > FS_MAX_SEGMENTS)
        return MSGR_SCAN_BAD_SEGMENT_COUNT;
    for (int64_t i = 0; i < FS_MAX_SEGMENTS; i++)
        f->len[i] = i < f->nseg ? (int64_t)fs_load_le32(p + 2 + 6 * i) : 0;
    if (f->nseg > 1 && f->len[f->nseg - 1] == 0)
        return MSGR_SCAN_BAD_SEGMENT_COUNT;
    for (int64_t i = 0; i < f->nseg; i++)
        if (f->len[i] > max_segment)
            return MSGR_SCAN_SEGMENT_TOO_LARGE;
    f->size = fs_onwire_size(f, rev1);
    return MSGR_SCAN_OK;
}

static int fs_crc_matches(const unsigned char *seg, int64_t len,
                          const unsigned char *crc_at)
{
    return msgr_crc32c(0xFFFFFFFFu, (const char *)seg, (size_t)len) ==
           fs_load_le32(crc_at);
}

/* Checks a complete rev1 frame at p; sets *flags. */
static int fs_check_rev1(const unsigned char *p, const struct fs_frame *f,
                         int64_t *flags)
{
    const unsigned char *seg = p + FS_PREAMBLE_SIZE;
    const unsigned char *epi = p + f->size - FS_EPILOGUE_REV1;
    unsigned late;

    *flags = 0;
    if (f->len[0] > 0) {
        if (!fs_crc_matches(seg, f->len[0], seg + f->len[0]))
            return MSGR_SCAN_BAD_SEGMENT_CRC;
        seg += f->len[0] + FS_CRC_SIZE;
    }
    if (f->nseg == 1)
        return MSGR_SCAN_OK;
    for (int64_t i = 1; i < f->nseg; i++) {
        if (!fs_crc_matches(seg, f->len[i], epi + 1 + FS_CRC_SIZE * (i - 1)))
            return MSGR_SCAN_BAD_SEGMENT_CRC;
        seg += f->len[i];
    }
    late = epi[0] & FS_LATE_STATUS_MASK;
    if (late == FS_LATE_STATUS_ABORTED)
        *flags = MSGR_FLAG_ABORTED;
    else if (late != FS_LATE_STATUS_COMPLETE)
        return MSGR_SCAN_BAD_LATE_STATUS;
    return MSGR_SCAN_OK;
}

/* Checks a complete rev0 frame at p; sets *flags. */
static int fs_check_rev0(const unsigned char *p, const struct fs_frame *f,
                         int64_t *flags)
{
    const unsigned char *seg = p + FS_PREAMBLE_SIZE;
    const unsigned char *epi = p + f->size - FS_EPILOGUE_REV0;

    for (int64_t i = 0; i < f->nseg; i++) {
        if (!fs_crc_matches(seg, f->len[i], epi + 1 + FS_CRC_SIZE * i))
            return MSGR_SCAN_BAD_SEGMENT_CRC;
        seg += f->len[i];
    }
    *flags = (epi[0] & FS_LATE_FLAG_ABORTED) ? MSGR_FLAG_ABORTED : 0;
    return MSGR_SCAN_OK;
}

static void fs_record(int64_t *rec, int64_t offset, const struct fs_frame *f,
                      int64_t flags)
{
    rec[0] = offset;
    rec[1] = f->tag;
    rec[2] = f->nseg;
    for (int i = 0; i < FS_MAX_SEGMENTS; i++)
        rec[3 + i] = f->len[i];
    rec[7] = flags;
}

int64_t msgr_scan_frames(const char *buf, int64_t start, int64_t end,
                         int rev1, int64_t max_segment,
                         int64_t *out, int64_t max_frames, int64_t *result)
{
    const unsigned char *b = (const unsigned char *)buf;
    int64_t pos = start, nframes = 0, need = 0;
    int status = MSGR_SCAN_OK;

    while (start >= 0 && nframes < max_frames &&
           end - pos >= FS_PREAMBLE_SIZE) {
        struct fs_frame f;
        int64_t flags = 0;

        status = fs_parse_preamble(b + pos, rev1, max_segment, &f);
        if (status != MSGR_SCAN_OK)
            break;
        if (end - pos < f.size) {
            need = f.size;
            break;
        }
        status = rev1 ? fs_check_rev1(b + pos, &f, &flags)
                      : fs_check_rev0(b + pos, &f, &flags);
        if (status != MSGR_SCAN_OK)
            break;
        fs_record(out + MSGR_FRAME_RECORD_SIZE * nframes, pos, &f, flags);
        nframes++;
        pos += f.size;
    }
    result[0] = status;
    result[1] = pos;
    result[2] = need;
    return nframes;
}

#undef FS_PREAMBLE_SIZE
#undef FS_PREAMBLE_CRC_SPAN
#undef FS_CRC_SIZE
#undef FS_MAX_SEGMENTS
#undef FS_EPILOGUE_REV1
#undef FS_EPILOGUE_REV0
#undef FS_LATE_STATUS_MASK
#undef FS_LATE_STATUS_COMPLETE
#undef FS_LATE_STATUS_ABORTED
#undef FS_LATE_FLAG_ABORTED
