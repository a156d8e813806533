/*
 * crc32c.c -- CRC32C with Ceph's semantics (ceph_crc32c).
 *
 * The CRC is the raw reflected Castagnoli CRC (poly 0x82F63B78): the caller
 * passes the seed and no initial or final inversion is applied, so the
 * standard CRC-32C of x is msgr_crc32c(0xFFFFFFFF, x) ^ 0xFFFFFFFF.
 *
 * Several implementations compute identical results:
 *   - x86-64 with SSE4.2: the crc32 instruction, 8 bytes per step, after a
 *     byte-wise prologue that aligns the pointer to 8 bytes; three
 *     interleaved streams for long buffers.
 *   - x86-64 with SSE4.2 and PCLMULQDQ (plus AVX-512F and VPCLMULQDQ for
 *     the zmm form): carry-less multiply folding for buffers of 128 bytes
 *     and more, finished with the crc32 instruction.  Chosen at load time
 *     with __builtin_cpu_supports; the functions carry target attributes,
 *     so the file needs no -m flags.
 *   - everywhere: slice-by-8 tables (8 KiB), also reachable directly through
 *     msgr_crc32c_sw() so that tests can compare the two paths.
 *
 * Initialisation and memory ordering: the tables and the "hardware present"
 * and "implementation level" flags are written once by a load-time
 * constructor, which runs while the dynamic loader holds its lock and
 * before dlopen() returns, so every thread that can call into this library
 * observes them fully written.  After that they are read-only; no atomics
 * are needed.
 */
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
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

/*
 * Carry-less multiply folding (Intel, "Fast CRC Computation for Generic
 * Polynomials Using PCLMULQDQ", 2009, as in Linux's crc32c-pcl-intel),
 * written for the reflected polynomial and finished with the crc32
 * instruction.
 *
 * Bit order.  A 16-byte lane loaded little-endian holds in bit i the
 * coefficient of x^(127-i): the first message bit is the highest power, as
 * in every reflected CRC.  Its low qword h carries x^127..x^64, its high
 * qword l carries x^63..x^0.  PCLMULQDQ of two qwords read that way returns
 * their product times x (bit m of the result is the coefficient of x^(126-m)).
 *
 * Folding.  crc(0, M) = M * x^32 mod P depends only on M mod P, so a lane V
 * lying T bits before a later lane W can be replaced by anything congruent
 * to V * x^T and XORed into W:
 *     V * x^T = h * x^(T+64) + l * x^T
 *          == clmul(h, rev32(x^(T+31) mod P)) ^ clmul(l, rev32(x^(T-33) mod P))
 * where rev32(c) puts the coefficient of x^(31-j) in bit j.  Read as a qword
 * such a constant is c * x^32, and clmul adds one more x, hence the 31 and
 * -33.  A qword times a 32-bit constant fits in 95 bits, so the result is
 * again a 128-bit lane.
 *
 * Seed and finish.  For |M| >= 4, crc(s, M) = crc(0, M with s XORed into its
 * first four bytes), since both equal (s * x^(8|M|) + M * x^32) mod P.  Once
 * everything is folded into one lane V followed by a tail of fewer than 16
 * bytes, crc = crc(0, V stored as 16 bytes || tail), which the crc32
 * instruction computes exactly: no Barrett reduction is needed.
 *
 * The constants, as (rev32(x^(T+31) mod P), rev32(x^(T-33) mod P)) for a
 * fold distance of T bits, come from GF(2) arithmetic with the unreflected
 * P = 0x11EDC6F41 (Python):
 *     def pmod(a):                        # a mod P
 *         while a.bit_length() > 32:
 *             a ^= 0x11EDC6F41 << (a.bit_length() - 33)
 *         return a
 *     def rev32(c): return int(f"{c:032b}"[::-1], 2)
 *     def k(T): return rev32(pmod(1 << (T + 31))), rev32(pmod(1 << (T - 33)))
 * They agree with the constants of other public PCLMULQDQ CRC32C code
 * (e.g. k(512) = 0x740eef02, 0x9e4addf8 in 4 x 128-bit folds).
 * tests/unit/test_native.py re-derives the table below and checks every
 * path against the slice-by-8 tables.
 */
#include <immintrin.h>

#define CRC32C_K128  0xf20c0dfeu, 0x493c7d27u
#define CRC32C_K256  0x3da6d0cbu, 0xba4fc28eu
#define CRC32C_K384  0x1c291d04u, 0xddc0152bu
#define CRC32C_K512  0x740eef02u, 0x9e4addf8u
#define CRC32C_K1024 0x6992cea2u, 0x0d3b6092u
#define CRC32C_K1536 0xa87ab8a8u, 0xab7aff2au
#define CRC32C_K2048 0xdcb17aa4u, 0xb9e02b86u

/*
 * Dispatch bounds, measured on AMD Zen 4 (where a clmul instruction of any
 * width issued about every 2 cycles): below 128 bytes the paths are
 * within a few ns of each other and the crc32 path is kept.  The zmm path
 * wins from 128 bytes on (58 GB/s from 64 KiB, against 27 for crc32c_3way);
 * the 128-bit path wins only below 1 KiB, where crc32c_hw pays for its
 * shift-table joins, and is 2x slower than crc32c_3way beyond.
 */
#define CRC32C_FOLD_MIN 128
#define CRC32C_PCLMUL_MAX 1024

/* Implementation levels, each needing the CPU features of those below. */
enum {
    CRC32C_ISA_TABLE,       /* slice-by-8 */
    CRC32C_ISA_CRC32,       /* SSE4.2 */
    CRC32C_ISA_PCLMUL,      /* + PCLMULQDQ */
    CRC32C_ISA_VPCLMUL      /* + AVX-512F and VPCLMULQDQ */
};
static int crc32c_isa;

/* A fold constant pair as a 128-bit operand: kh in the low qword. */
static inline __m128i crc32c_k128(uint32_t kh, uint32_t kl)
{
    return _mm_set_epi64x((long long)kl, (long long)kh);
}

/* Returns a lane congruent to v * x^T, where k = crc32c_k128(CRC32C_K<T>). */
__attribute__((target("pclmul,sse4.2")))
static inline __m128i crc32c_fold16(__m128i v, __m128i k)
{
    return _mm_xor_si128(_mm_clmulepi64_si128(v, k, 0x00),
                         _mm_clmulepi64_si128(v, k, 0x11));
}

/* crc(0, v as 16 bytes || p[0..len)), for any len. */
__attribute__((target("sse4.2")))
static uint32_t crc32c_finish(__m128i v, const unsigned char *p, size_t len)
{
    unsigned long long crc = 0;
    crc = __builtin_ia32_crc32di(crc, (unsigned long long)_mm_cvtsi128_si64(v));
    crc = __builtin_ia32_crc32di(
        crc, (unsigned long long)_mm_cvtsi128_si64(_mm_unpackhi_epi64(v, v)));
    return crc32c_hw((uint32_t)crc, p, len);
}

/* Folds v forward over whole 16-byte lanes of p, then finishes. */
__attribute__((target("pclmul,sse4.2")))
static uint32_t crc32c_fold_rest(__m128i v, const unsigned char *p, size_t len)
{
    const __m128i k128 = crc32c_k128(CRC32C_K128);
    while (len >= 16) {
        v = _mm_xor_si128(crc32c_fold16(v, k128),
                          _mm_loadu_si128((const __m128i *)p));
        p += 16;
        len -= 16;
    }
    return crc32c_finish(v, p, len);
}

/*
 * PCLMULQDQ path: four 16-byte lanes per 64-byte step, folded into one,
 * then one lane per 16 bytes; needs len >= 64.
 */
__attribute__((target("pclmul,sse4.2")))
static uint32_t crc32c_pclmul(uint32_t seed, const unsigned char *p,
                              size_t len)
{
    const __m128i k512 = crc32c_k128(CRC32C_K512);
    const __m128i *q = (const __m128i *)p;
    __m128i x0 = _mm_xor_si128(_mm_loadu_si128(q),
                               _mm_cvtsi32_si128((int)seed));
    __m128i x1 = _mm_loadu_si128(q + 1), x2 = _mm_loadu_si128(q + 2);
    __m128i x3 = _mm_loadu_si128(q + 3);

    for (p += 64, len -= 64; len >= 64; p += 64, len -= 64) {
        q = (const __m128i *)p;
        x0 = _mm_xor_si128(crc32c_fold16(x0, k512), _mm_loadu_si128(q));
        x1 = _mm_xor_si128(crc32c_fold16(x1, k512), _mm_loadu_si128(q + 1));
        x2 = _mm_xor_si128(crc32c_fold16(x2, k512), _mm_loadu_si128(q + 2));
        x3 = _mm_xor_si128(crc32c_fold16(x3, k512), _mm_loadu_si128(q + 3));
    }
    x3 = _mm_xor_si128(x3, crc32c_fold16(x0, crc32c_k128(CRC32C_K384)));
    x3 = _mm_xor_si128(x3, crc32c_fold16(x1, crc32c_k128(CRC32C_K256)));
    x3 = _mm_xor_si128(x3, crc32c_fold16(x2, crc32c_k128(CRC32C_K128)));
    return crc32c_fold_rest(x3, p, len);
}

#define CRC32C_TARGET_VPCLMUL "avx512f,vpclmulqdq,pclmul,sse4.2"

/* The 512-bit form of crc32c_fold16 (every 128-bit lane folded by T). */
__attribute__((target(CRC32C_TARGET_VPCLMUL)))
static inline __m512i crc32c_fold64(__m512i v, __m512i k)
{
    return _mm512_xor_si512(_mm512_clmulepi64_epi128(v, k, 0x00),
                            _mm512_clmulepi64_epi128(v, k, 0x11));
}

/* a ^ b ^ c in one instruction. */
__attribute__((target(CRC32C_TARGET_VPCLMUL)))
static inline __m512i crc32c_xor3(__m512i a, __m512i b, __m512i c)
{
    return _mm512_ternarylogic_epi64(a, b, c, 0x96);
}

/* A fold constant pair broadcast to the four lanes of a zmm. */
__attribute__((target(CRC32C_TARGET_VPCLMUL)))
static inline __m512i crc32c_k512(uint32_t kh, uint32_t kl)
{
    return _mm512_broadcast_i32x4(crc32c_k128(kh, kl));
}

/* Folds the four lanes of z into one: lane j moves 384 - 128 j bits. */
__attribute__((target(CRC32C_TARGET_VPCLMUL)))
static inline __m128i crc32c_lanes_to_one(__m512i z)
{
    __m512i k = _mm512_setzero_si512();    /* lane 3 is multiplied by 0 */
    __m512i f;
    __m128i v;

    k = _mm512_inserti32x4(k, crc32c_k128(CRC32C_K384), 0);
    k = _mm512_inserti32x4(k, crc32c_k128(CRC32C_K256), 1);
    k = _mm512_inserti32x4(k, crc32c_k128(CRC32C_K128), 2);
    f = crc32c_fold64(z, k);
    v = _mm_xor_si128(_mm512_extracti32x4_epi32(f, 0),
                      _mm512_extracti32x4_epi32(f, 1));
    v = _mm_xor_si128(v, _mm512_extracti32x4_epi32(f, 2));
    return _mm_xor_si128(v, _mm512_extracti32x4_epi32(z, 3));
}

/*
 * Sixteen lanes in four zmm registers, 256 bytes per step, folded into one
 * zmm at the end; needs *len >= 256, advances *p and *len past the blocks.
 */
__attribute__((target(CRC32C_TARGET_VPCLMUL)))
static inline __m512i crc32c_fold256(__m512i z0, const unsigned char **pp,
                                     size_t *len)
{
    const __m512i k2048 = crc32c_k512(CRC32C_K2048);
    const unsigned char *p = *pp;
    __m512i z1 = _mm512_loadu_si512(p + 64), z2 = _mm512_loadu_si512(p + 128);
    __m512i z3 = _mm512_loadu_si512(p + 192);
    size_t n = *len;

    for (p += 256, n -= 256; n >= 256; p += 256, n -= 256) {
        z0 = crc32c_xor3(_mm512_clmulepi64_epi128(z0, k2048, 0x00),
                         _mm512_clmulepi64_epi128(z0, k2048, 0x11),
                         _mm512_loadu_si512(p));
        z1 = crc32c_xor3(_mm512_clmulepi64_epi128(z1, k2048, 0x00),
                         _mm512_clmulepi64_epi128(z1, k2048, 0x11),
                         _mm512_loadu_si512(p + 64));
        z2 = crc32c_xor3(_mm512_clmulepi64_epi128(z2, k2048, 0x00),
                         _mm512_clmulepi64_epi128(z2, k2048, 0x11),
                         _mm512_loadu_si512(p + 128));
        z3 = crc32c_xor3(_mm512_clmulepi64_epi128(z3, k2048, 0x00),
                         _mm512_clmulepi64_epi128(z3, k2048, 0x11),
                         _mm512_loadu_si512(p + 192));
    }
    *pp = p;
    *len = n;
    z3 = crc32c_xor3(z3, crc32c_fold64(z0, crc32c_k512(CRC32C_K1536)),
                     crc32c_fold64(z1, crc32c_k512(CRC32C_K1024)));
    return _mm512_xor_si512(z3, crc32c_fold64(z2, crc32c_k512(CRC32C_K512)));
}

/*
 * VPCLMULQDQ path: 256-byte steps while they last, then one zmm (four
 * lanes) per 64 bytes, then one lane per 16 bytes; needs len >= 64.
 * Clears the upper zmm halves before the 128-bit tail so that no later SSE
 * code, here or in the caller, runs with a dirty upper state.
 */
__attribute__((target(CRC32C_TARGET_VPCLMUL)))
static uint32_t crc32c_vpclmul(uint32_t seed, const unsigned char *p,
                               size_t len)
{
    const __m512i k512 = crc32c_k512(CRC32C_K512);
    const __m512i s = _mm512_inserti32x4(_mm512_setzero_si512(),
                                         _mm_cvtsi32_si128((int)seed), 0);
    __m512i z = _mm512_xor_si512(_mm512_loadu_si512(p), s);
    __m128i v;

    if (len >= 256) {
        z = crc32c_fold256(z, &p, &len);
    } else {
        p += 64;
        len -= 64;
    }
    for (; len >= 64; p += 64, len -= 64)
        z = _mm512_xor_si512(crc32c_fold64(z, k512), _mm512_loadu_si512(p));
    v = crc32c_lanes_to_one(z);
    _mm256_zeroupper();
    return crc32c_fold_rest(v, p, len);
}

/*
 * The best level this CPU supports, capped by the environment variable
 * MSGR_CRC32C=table|crc32|pclmul|vpclmul (unset or anything else: no cap)
 * so that tests and benchmarks can reach every path.  A cap never enables
 * what the CPU lacks.  Needs __builtin_cpu_init() first.
 */
static int crc32c_pick_isa(void)
{
    static const char *const names[] = {"table", "crc32", "pclmul", "vpclmul"};
    const char *cap = getenv("MSGR_CRC32C");
    int isa = CRC32C_ISA_TABLE;

    if (__builtin_cpu_supports("sse4.2")) {
        isa = CRC32C_ISA_CRC32;
        if (__builtin_cpu_supports("pclmul"))
            isa = CRC32C_ISA_PCLMUL;
        if (isa == CRC32C_ISA_PCLMUL && __builtin_cpu_supports("avx512f") &&
            __builtin_cpu_supports("vpclmulqdq"))
            isa = CRC32C_ISA_VPCLMUL;
    }
    for (int i = 0; cap && i < isa; i++)
        if (strcmp(cap, names[i]) == 0)
            return i;
    return isa;
}

/* The x86 dispatcher (needs SSE4.2): the fastest path for this length. */
static uint32_t crc32c_x86(uint32_t seed, const unsigned char *p, size_t len)
{
    if (len >= CRC32C_FOLD_MIN) {
        if (crc32c_isa == CRC32C_ISA_VPCLMUL)
            return crc32c_vpclmul(seed, p, len);
        if (crc32c_isa == CRC32C_ISA_PCLMUL && len < CRC32C_PCLMUL_MAX)
            return crc32c_pclmul(seed, p, len);
    }
    return crc32c_hw(seed, p, len);
}
#endif

__attribute__((constructor))
static void crc32c_init(void)
{
    crc32c_init_tables();
#ifdef MSGR_CRC32C_X86
    __builtin_cpu_init();
    crc32c_isa = crc32c_pick_isa();
    crc32c_have_hw = crc32c_isa >= CRC32C_ISA_CRC32;
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
        return crc32c_x86(seed, (const unsigned char *)data, len);
#endif
    return msgr_crc32c_sw(seed, data, len);
}

#undef CRC32C_POLY
