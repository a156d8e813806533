/*
 * crc32c.c -- CRC32C with Ceph's semantics (ceph_crc32c).
 *
 * The CRC is the raw reflected Castagnoli CRC (poly 0x82F63B78): the caller
 * passes the seed and no initial or final inversion is applied, so the
 * standard CRC-32C of x is msgr_crc32c(0xFFFFFFFF, x) ^ 0xFFFFFFFF.
 *
 * Two implementations compute identical results:
 *   - x86-64 with SSE4.2: the crc32 instruction, 8 bytes per step, after a
 *     byte-wise prologue that aligns the pointer to 8 bytes.
 *   - everywhere: slice-by-8 tables (8 KiB), also reachable directly through
 *     msgr_crc32c_sw() so that tests can compare the two paths.
 *
 * Initialisation and memory ordering: the tables and the "hardware present"
 * flag are written once by a load-time constructor, which runs while the
 * dynamic loader holds its lock and before dlopen() returns, so every thread
 * that can call into this library observes them fully written.  After that
 * they are read-only; no atomics are needed.
 */
#include <stddef.h>
#include <stdint.h>
#include <string.h>

#include "msgr_native.h"

#define CRC32C_POLY 0x82F63B78u

static uint32_t crc32c_table[8][256];
static int crc32c_have_hw;

static uint32_t crc32c_load_le32(const unsigned char *p)
{
    return (uint32_t)p[0] | ((uint32_t)p[1] << 8) |
           ((uint32_t)p[2] << 16) | ((uint32_t)p[3] << 24);
}

static void crc32c_init_tables(void)
{
    for (uint32_t n = 0; n < 256; n++) {
        uint32_t c = n;
        for (int k = 0; k < 8; k++)
            c = (c & 1u) ? (c >> 1) ^ CRC32C_POLY : c >> 1;
        crc32c_table[0][n] = c;
    }
    for (uint32_t n = 0; n < 256; n++) {
        uint32_t c = crc32c_table[0][n];
        for (int k = 1; k < 8; k++) {
            c = crc32c_table[0][c & 0xffu] ^ (c >> 8);
            crc32c_table[k][n] = c;
        }
    }
}

static uint32_t crc32c_sw_bytes(uint32_t crc, const unsigned char *p,
                                size_t len)
{
    while (len--)
        crc = crc32c_table[0][(crc ^ *p++) & 0xffu] ^ (crc >> 8);
    return crc;
}

uint32_t msgr_crc32c_sw(uint32_t seed, const char *data, size_t len)
{
    const unsigned char *p = (const unsigned char *)data;
    uint32_t crc = seed;
    size_t head = (size_t)(-(uintptr_t)p & 7u);

    if (head > len)
        head = len;
    crc = crc32c_sw_bytes(crc, p, head);
    p += head;
    len -= head;
    while (len >= 8) {
        uint32_t lo = crc32c_load_le32(p) ^ crc;
        uint32_t hi = crc32c_load_le32(p + 4);
        crc = crc32c_table[7][lo & 0xffu] ^
              crc32c_table[6][(lo >> 8) & 0xffu] ^
              crc32c_table[5][(lo >> 16) & 0xffu] ^
              crc32c_table[4][lo >> 24] ^
              crc32c_table[3][hi & 0xffu] ^
              crc32c_table[2][(hi >> 8) & 0xffu] ^
              crc32c_table[1][(hi >> 16) & 0xffu] ^
              crc32c_table[0][hi >> 24];
        p += 8;
        len -= 8;
    }
    return crc32c_sw_bytes(crc, p, len);
}

#if defined(__x86_64__) && (defined(__GNUC__) || defined(__clang__))
#define MSGR_CRC32C_X86 1

/*
 * Three interleaved crc32 streams hide the instruction's 3-cycle latency.
 * The CRC here is raw (no pre/post inversion), hence linear:
 *   crc(seed, A || B) = shift(crc(seed, A), |B|) ^ crc(0, B)
 * where shift() multiplies by x^(8|B|) mod P; the streams are joined with
 * precomputed shift tables for LONG and SHORT byte counts (after Mark
 * Adler's crc32c.c).
 */
#define CRC32C_LONG 8192
#define CRC32C_SHORT 256
static uint32_t crc32c_long[4][256];
static uint32_t crc32c_short[4][256];

static uint32_t gf2_matrix_times(const uint32_t *mat, uint32_t vec)
{
    uint32_t sum = 0;
    while (vec) {
        if (vec & 1)
            sum ^= *mat;
        vec >>= 1;
        mat++;
    }
    return sum;
}

static void gf2_matrix_square(uint32_t *square, const uint32_t *mat)
{
    for (int n = 0; n < 32; n++)
        square[n] = gf2_matrix_times(mat, mat[n]);
}

/* The operator that feeds len zero bytes through the CRC register. */
static void crc32c_zeros_op(uint32_t *even, size_t len)
{
    uint32_t odd[32], row = 1;
    odd[0] = CRC32C_POLY;
    for (int n = 1; n < 32; n++) {
        odd[n] = row;
        row <<= 1;
    }
    gf2_matrix_square(even, odd);   /* 2 zero bits */
    gf2_matrix_square(odd, even);   /* 4 zero bits */
    do {                            /* each square doubles the count: 8 bits = 1 byte first */
        gf2_matrix_square(even, odd);
        len >>= 1;
        if (len == 0)
            return;
        gf2_matrix_square(odd, even);
        len >>= 1;
    } while (len);
    memcpy(even, odd, sizeof(odd));
}

static void crc32c_zeros(uint32_t zeros[][256], size_t len)
{
    uint32_t op[32];
    crc32c_zeros_op(op, len);
    for (uint32_t n = 0; n < 256; n++) {
        zeros[0][n] = gf2_matrix_times(op, n);
        zeros[1][n] = gf2_matrix_times(op, n << 8);
        zeros[2][n] = gf2_matrix_times(op, n << 16);
        zeros[3][n] = gf2_matrix_times(op, n << 24);
    }
}

static inline uint32_t crc32c_shift(uint32_t zeros[][256], uint32_t crc)
{
    return zeros[0][crc & 0xff] ^ zeros[1][(crc >> 8) & 0xff] ^
           zeros[2][(crc >> 16) & 0xff] ^ zeros[3][crc >> 24];
}

static void crc32c_init_shift_tables(void)
{
    crc32c_zeros(crc32c_long, CRC32C_LONG);
    crc32c_zeros(crc32c_short, CRC32C_SHORT);
}

__attribute__((target("sse4.2")))
static const unsigned char *crc32c_3way(unsigned long long *crc, const unsigned char *p,
                                        size_t *len, size_t block, uint32_t zeros[][256])
{
    unsigned long long c0 = *crc;
    while (*len >= 3 * block) {
        unsigned long long c1 = 0, c2 = 0, w0, w1, w2;
        const unsigned char *end = p + block;
        do {
            memcpy(&w0, p, 8);
            memcpy(&w1, p + block, 8);
            memcpy(&w2, p + 2 * block, 8);
            c0 = __builtin_ia32_crc32di(c0, w0);
            c1 = __builtin_ia32_crc32di(c1, w1);
            c2 = __builtin_ia32_crc32di(c2, w2);
            p += 8;
        } while (p < end);
        c0 = crc32c_shift(zeros, (uint32_t)c0) ^ (uint32_t)c1;
        c0 = crc32c_shift(zeros, (uint32_t)c0) ^ (uint32_t)c2;
        p += 2 * block;
        *len -= 3 * block;
    }
    *crc = c0;
    return p;
}

__attribute__((target("sse4.2")))
static uint32_t crc32c_hw(uint32_t seed, const unsigned char *p, size_t len)
{
    unsigned long long crc = seed;

    while (len && ((uintptr_t)p & 7u)) {
        crc = __builtin_ia32_crc32qi((unsigned int)crc, *p++);
        len--;
    }
    p = crc32c_3way(&crc, p, &len, CRC32C_LONG, crc32c_long);
    p = crc32c_3way(&crc, p, &len, CRC32C_SHORT, crc32c_short);
    while (len >= 8) {
        unsigned long long word;
        memcpy(&word, p, 8);
        crc = __builtin_ia32_crc32di(crc, word);
        p += 8;
        len -= 8;
    }
    while (len--)
        crc = __builtin_ia32_crc32qi((unsigned int)crc, *p++);
    return (uint32_t)crc;
}
#endif

__attribute__((constructor))
static void crc32c_init(void)
{
    crc32c_init_tables();
#ifdef MSGR_CRC32C_X86
    __builtin_cpu_init();
    crc32c_have_hw = __builtin_cpu_supports("sse4.2") ? 1 : 0;
    crc32c_init_shift_tables();
#endif
}

int msgr_crc32c_hw_available(void)
{
    return crc32c_have_hw;
}

uint32_t msgr_crc32c(uint32_t seed, const char *data, size_t len)
{
#ifdef MSGR_CRC32C_X86
    if (crc32c_have_hw)
        return crc32c_hw(seed, (const unsigned char *)data, len);
#endif
    return msgr_crc32c_sw(seed, data, len);
}

#undef CRC32C_POLY
