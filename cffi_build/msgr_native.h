/*
 * msgr_native.h -- the cffi cdef of msgr's native layer.
 *
 * This file is parsed by cffi (ffibuilder.cdef) and is also included by
 * the C sources, so it must stay within the subset of C that cffi's parser
 * accepts: no #include, no #if, only integer #defines and declarations.
 * Every translation unit that includes it must include <stdint.h> and
 * <stddef.h> first.
 */

/* ---- CRC32C (Castagnoli, reflected poly 0x82F63B78, no pre/post xor) ---- */

/* Ceph's ceph_crc32c(): raw CRC, the caller's seed, hardware when possible. */
uint32_t msgr_crc32c(uint32_t seed, const char *data, size_t len);
/* The same function, always computed with the slice-by-8 tables. */
uint32_t msgr_crc32c_sw(uint32_t seed, const char *data, size_t len);
/* 1 when msgr_crc32c() uses the SSE4.2 crc32 instruction, else 0. */
int msgr_crc32c_hw_available(void);

/* ---- msgr2 crc-mode frame scanner ---- */

#define MSGR_SCAN_OK 0
#define MSGR_SCAN_BAD_PREAMBLE_CRC 1
#define MSGR_SCAN_BAD_SEGMENT_COUNT 2
#define MSGR_SCAN_SEGMENT_TOO_LARGE 3
#define MSGR_SCAN_BAD_SEGMENT_CRC 4
#define MSGR_SCAN_BAD_LATE_STATUS 5
#define MSGR_FRAME_RECORD_SIZE 8
#define MSGR_FLAG_ABORTED 1

/*
 * Scans buf[start:end) for complete msgr2 crc-mode frames.  Frame k is
 * recorded at out[8k:8k+8] = {offset, tag, num_segments, len0..len3, flags}.
 * result[0] = status, result[1] = pos (end of last recorded frame),
 * result[2] = need (size of the incomplete frame at pos, or 0).
 * Returns the number of frames recorded (at most max_frames).
 */
int64_t msgr_scan_frames(const char *buf, int64_t start, int64_t end,
                         int rev1, int64_t max_segment,
                         int64_t *out, int64_t max_frames, int64_t *result);

/* ---- msgr2 crc-mode frame builder (batch) ---- */

#define MSGR_TAG_MESSAGE 17
#define MSGR_HEADER2_SIZE 41

/*
 * Fills n MESSAGE frames laid out back to back from buf[0] (see
 * frames_build.c). Frame k has payload segments of lens[3k], lens[3k+1] and
 * lens[3k+2] bytes (front, middle, data). Returns 0, or -1-k when frame k
 * does not fit in buflen or a length is out of range (nothing from frame k
 * on is written).
 */
int64_t msgr_fill_message_frames(char *buf, int64_t buflen, const int64_t *lens, int64_t n,
                                 int rev1);

/* ---- SPSC ring set: counters and eventcount (slots live in Python) ---- */

typedef struct msgr_ringset msgr_ringset;

#define MSGR_RINGSET_MAX_RINGS 65536

/* NULL on allocation failure or nrings outside [1, MSGR_RINGSET_MAX_RINGS]. */
msgr_ringset *msgr_ringset_new(uint32_t nrings);
void msgr_ringset_free(msgr_ringset *rs);
/* Producer of ring i: 0 ok, -1 bad index, -2 tail moved backwards. */
int msgr_ring_publish(msgr_ringset *rs, uint32_t i, uint64_t tail);
/* Producer of ring i: the consumer's released count (acquire). */
uint64_t msgr_ring_head(msgr_ringset *rs, uint32_t i);
/*
 * Consumer: stores heads[] (release), then waits until some tail > head.
 * Fills tails[] and returns 1 (items), 0 (timeout or signal, no items) or
 * -1 (closed and drained).  timeout < 0 waits forever.
 */
int msgr_ringset_wait(msgr_ringset *rs, const uint64_t *heads,
                      uint64_t *tails, double timeout);
void msgr_ringset_close(msgr_ringset *rs);
int msgr_ringset_closed(msgr_ringset *rs);
/* 1 while the consumer has announced that it is about to sleep. */
int msgr_ringset_sleeping(msgr_ringset *rs);
