/*
 * rnnedge_dsp.h: the few Armv7E-M DSP instructions the int8 dot products use, as inline functions, and those dot
 * products.
 *
 * Where the compiler targets the DSP extension (__ARM_FEATURE_DSP: Cortex-M4, M7, M33 with DSP, ...) each one is
 * the ACLE intrinsic of <arm_acle.h>, one instruction; elsewhere (the host, Cortex-M3, RISC-V) it is plain C that
 * computes the same bits, so a host build with RNNEDGE_DSP_DOT 1 runs the DSP kernel's pairing and ordering
 * logic instruction for instruction, only slower. The names carry the rnnedge_ prefix rather than CMSIS's __SMLAD
 * spellings: identifiers starting with two underscores are the implementation's, and an application that includes
 * CMSIS headers next to this one must not see them defined twice.
 *
 * RNNEDGE_DSP_DOT (default: 1 where __ARM_FEATURE_DSP is defined, else 0) selects the int8 dot products built on
 * these, at the end of this file (src/rnnedge_int8.c, their one user, picks them per row); define it to 0 or 1 on the
 * command line to force either path.
 */
#ifndef RNNEDGE_DSP_H
#define RNNEDGE_DSP_H

#include <stdint.h>
#include <string.h>

/* Little-endian only: the pair words are read with LDRD, whose first register gets the word at the lower address. */
#if defined(__ARM_FEATURE_DSP) && __ARM_FEATURE_DSP && !defined(__ARMEB__)
#include <arm_acle.h>
#define RNNEDGE_HAVE_DSP 1
#else
#define RNNEDGE_HAVE_DSP 0
#endif

#ifndef RNNEDGE_DSP_DOT
#define RNNEDGE_DSP_DOT RNNEDGE_HAVE_DSP
#endif

/** 4 bytes at p, any alignment, as a little-endian word (what LDR reads on a little-endian Cortex-M; a Cortex-M4
 * loads unaligned words with one LDR, and gcc compiles this memcpy to that LDR). Big-endian hosts: assembled
 * from bytes, so the pairing below stays the little-endian one everywhere. */
static inline uint32_t rnnedge_load_u32(const void *p)
{
#if defined(__BYTE_ORDER__) && __BYTE_ORDER__ == __ORDER_LITTLE_ENDIAN__
    uint32_t w;
    memcpy(&w, p, sizeof w);
    return w;
#else
    const uint8_t *b = (const uint8_t *)p;
    return (uint32_t)b[0] | ((uint32_t)b[1] << 8) | ((uint32_t)b[2] << 16) | ((uint32_t)b[3] << 24);
#endif
}

/** Two int16 as the word SMLAD reads: lo in bits 0..15, hi in bits 16..31. */
static inline uint32_t rnnedge_pack16(int16_t lo, int16_t hi)
{
    return (uint32_t)(uint16_t)lo | ((uint32_t)(uint16_t)hi << 16);
}

#if RNNEDGE_HAVE_DSP

/** SXTB16: bytes 0 and 2 of w, each sign-extended to a halfword (byte 0 -> bits 0..15, byte 2 -> bits 16..31). */
static inline uint32_t rnnedge_sxtb16(uint32_t w)
{
    return (uint32_t)__sxtb16((int8x4_t)w);
}

/** SXTB16 with ROR #8: bytes 1 and 3 of w, sign-extended. <arm_acle.h> has no rotated form and gcc 12 does not
 * fold a separate rotate into the instruction (one more instruction per four weights), hence the one asm line. */
static inline uint32_t rnnedge_sxtb16_ror8(uint32_t w)
{
    uint32_t r;
    __asm__("sxtb16 %0, %1, ror #8" : "=r"(r) : "r"(w));
    return r;
}

/** The two 32-bit halves of the 8-byte-aligned word at p: one LDRD (gcc -Os loads a uint64_t as two LDR). "m" of
 * a 64-bit object gives an address LDRD accepts (base + a multiple of 4 below 1024: gcc's own 64-bit accesses). */
static inline void rnnedge_load_pair(const uint64_t *p, uint32_t *lo, uint32_t *hi)
{
    uint32_t a;
    uint32_t b;
    __asm__("ldrd %0, %1, %2" : "=r"(a), "=r"(b) : "m"(*p));
    *lo = a;
    *hi = b;
}

/** QADD: a + b saturated to [INT32_MIN, INT32_MAX]. */
static inline int32_t rnnedge_qadd(int32_t a, int32_t b)
{
    return __qadd(a, b);
}

/** SSAT #16: x clamped to [-32768, 32767] (asm: gcc 12's __ssat trips -Wsign-conversion, and gcc -Os turns the
 * int16 clamp after a QADD into two compares and two moves). */
static inline int32_t rnnedge_ssat16(int32_t x)
{
    int32_t r;
    __asm__("ssat %0, #16, %1" : "=r"(r) : "r"(x));
    return r;
}

/** SMMULR: round(a * b / 2^32), ties up: the high word of a * b + 2^31 (asr: <arm_acle.h> has no intrinsic). */
static inline int32_t rnnedge_smmulr(int32_t a, int32_t b)
{
    int32_t r;
    __asm__("smmulr %0, %1, %2" : "=r"(r) : "r"(a), "r"(b));
    return r;
}

/** SMLAD: acc + lo(a) * lo(b) + hi(a) * hi(b), the halfwords signed. Wraps modulo 2^32 (and sets the Q flag) on
 * overflow; the callers' sums are proven to fit int32. */
static inline int32_t rnnedge_smlad(uint32_t a, uint32_t b, int32_t acc)
{
    return __smlad((int16x2_t)a, (int16x2_t)b, acc);
}

#else /* plain C, the same bits */

/** The signed halfword in bits 16 * k .. 16 * k + 15 of w (k 0 or 1). */
static inline int32_t rnnedge_half(uint32_t w, int k)
{
    const int32_t u = (int32_t)((w >> (16 * k)) & 0xFFFFu);
    return u >= 0x8000 ? u - 0x10000 : u;
}

/** The signed byte in bits 8 * k .. 8 * k + 7 of w. */
static inline int16_t rnnedge_byte(uint32_t w, int k)
{
    const int32_t u = (int32_t)((w >> (8 * k)) & 0xFFu);
    return (int16_t)(u >= 0x80 ? u - 0x100 : u);
}

static inline void rnnedge_load_pair(const uint64_t *p, uint32_t *lo, uint32_t *hi)
{
    *lo = (uint32_t)*p;
    *hi = (uint32_t)(*p >> 32);
}

static inline int32_t rnnedge_qadd(int32_t a, int32_t b)
{
    const int64_t sum = (int64_t)a + (int64_t)b;
    return (int32_t)(sum > INT32_MAX ? INT32_MAX : sum < INT32_MIN ? INT32_MIN : sum);
}

static inline int32_t rnnedge_smmulr(int32_t a, int32_t b)
{
    return (int32_t)(((int64_t)a * (int64_t)b + ((int64_t)1 << 31)) >> 32);
}

static inline int32_t rnnedge_ssat16(int32_t x)
{
    return x > INT16_MAX ? INT16_MAX : x < INT16_MIN ? INT16_MIN : x;
}

static inline uint32_t rnnedge_sxtb16(uint32_t w)
{
    return rnnedge_pack16(rnnedge_byte(w, 0), rnnedge_byte(w, 2));
}

static inline uint32_t rnnedge_sxtb16_ror8(uint32_t w)
{
    return rnnedge_pack16(rnnedge_byte(w, 1), rnnedge_byte(w, 3));
}

/** The DSP path's callers never overflow int32 here (see dot_int8 in rnnedge_int8.c), so plain int32
 * arithmetic matches the instruction's wrapping result. */
static inline int32_t rnnedge_smlad(uint32_t a, uint32_t b, int32_t acc)
{
    return acc + rnnedge_half(a, 0) * rnnedge_half(b, 0) + rnnedge_half(a, 1) * rnnedge_half(b, 1);
}

#endif /* RNNEDGE_HAVE_DSP */

/* -- the int8 dot products built on them (rnnedge_int8.c includes this header; nothing else does) ----------- */

/* The DSP dot product (RNNEDGE_DSP_DOT). The weights stay in the export's row-major int8 order: one
 * LDR reads four, w0..w3; SXTB16 widens w0, w2 and SXTB16 ROR 8 w1, w3 into int16 pairs. SMLAD multiplies a
 * weight pair by an activation pair, so the activations are put once per layer step into that order: for every
 * four v0..v3 one 64-bit "pair word", (v0, v2) in its low and (v1, v3) in its high 32 bits (one LDRD reads both).
 * A layer step packs its x and h once and reads them for every one of its rows; the weights and the C / runtime
 * file formats are unchanged. The packed copies live on the stack: RNNEDGE_DSP_WORDS pair words (default 64, 512
 * bytes: x and h of up to 256 values together); a vector that does not fit runs the plain dot product (same
 * integers). The gate rows are read four at a time (dot4_int8_pairs: rnnedge_int8_dsp_rows.h), the rest and the
 * head's rows two at a time (dot2_int8_pairs), so that one LDRD of activations serves four or two rows. */
#ifndef RNNEDGE_DSP_WORDS
#define RNNEDGE_DSP_WORDS (RNNEDGE_DSP_DOT ? 64 : 1)
#endif

/** The pair words of v's first n & ~3 values into buf if they fit in room words; returns buf, or 0 (the plain
 * dot product then reads v). room: what is left of the caller's buffer. */
static const uint64_t *pack_pairs(const int16_t *v, int32_t n, uint64_t *buf, int32_t room)
{
#if RNNEDGE_DSP_DOT
    const int32_t words = n >> 2;
    int32_t k;
    if (words > room) {
        return 0;
    }
#if RNNEDGE_HAVE_DSP
    for (k = 0; k < words; ++k) { /* two LDR (v is int16-aligned only), PKHBT, PKHTB, STRD: 7 a word with the loop */
        const uint32_t v01 = rnnedge_load_u32(v);
        const uint32_t v23 = rnnedge_load_u32(v + 2);
        uint32_t lo;
        uint32_t hi;
        __asm__("pkhbt %0, %1, %2, lsl #16" : "=r"(lo) : "r"(v01), "r"(v23));
        __asm__("pkhtb %0, %1, %2, asr #16" : "=r"(hi) : "r"(v23), "r"(v01));
        buf[k] = (uint64_t)lo | ((uint64_t)hi << 32);
        v += 4;
    }
#else
    for (k = 0; k < words; ++k) {
        buf[k] = (uint64_t)rnnedge_pack16(v[0], v[2]) | ((uint64_t)rnnedge_pack16(v[1], v[3]) << 32);
        v += 4;
    }
#endif
    return buf;
#else
    (void)v;
    (void)n;
    (void)buf;
    (void)room;
    return 0;
#endif
}

/** The number of pair words pack_pairs filled for n values (0 when it did not pack). */
static int32_t pairs_words(const uint64_t *pairs, int32_t n)
{
    return pairs != 0 ? n >> 2 : 0;
}

#if RNNEDGE_DSP_DOT
/** out[0], out[1] += the last n mod 4 products of rows w and w + n, from v itself. */
static void dot2_tail(const int8_t *w, const int16_t *v, int32_t n, int32_t *out)
{
    const int32_t done = n & ~(int32_t)3;
    int32_t k;
    for (k = done; k < n; ++k) {
        out[0] += (int32_t)w[k] * (int32_t)v[k];
        out[1] += (int32_t)w[n + k] * (int32_t)v[k];
    }
}

/** The last n mod 4 products of a row from v itself (the pair words cover n & ~3). */
static int32_t dot_tail(int32_t acc, const int8_t *w, const int16_t *v, int32_t n)
{
    int32_t k;
    w += n & ~(int32_t)3;
    v += n & ~(int32_t)3;
    for (k = n & 3; k > 0; --k) {
        acc += (int32_t)*w++ * (int32_t)*v++;
    }
    return acc;
}

/** bias + w . v over n with v's pair words (pack_pairs): per four weights one LDR, two SXTB16, two SMLAD, and
 * one LDRD of the two activation pairs. Exact in int32 as dot_int8. */
static int32_t dot_int8_pairs(int32_t bias, const int8_t *w, const uint64_t *pairs, const int16_t *v, int32_t n)
{
    const uint64_t *end = pairs + (n >> 2);
    const int8_t *w0 = w;
    int32_t acc = bias;
    while (pairs != end) {
        const uint32_t ws = rnnedge_load_u32(w0);
        uint32_t lo;
        uint32_t hi;
        rnnedge_load_pair(pairs, &lo, &hi);
        acc = rnnedge_smlad(rnnedge_sxtb16(ws), lo, acc);
        acc = rnnedge_smlad(rnnedge_sxtb16_ror8(ws), hi, acc);
        w0 += 4;
        ++pairs;
    }
    return dot_tail(acc, w, v, n);
}

/** acc0 += row a's four weights at wa . (lo, hi), acc1 likewise for wb: 2 LDR, 4 SXTB16, 4 SMLAD. */
#define DOT2_STEP(lo, hi, wa, wb)                                                                                 \
    do {                                                                                                          \
        const uint32_t xa_ = rnnedge_load_u32(wa);                                                                \
        const uint32_t xb_ = rnnedge_load_u32(wb);                                                                \
        acc0 = rnnedge_smlad(rnnedge_sxtb16(xa_), lo, acc0);                                                      \
        acc0 = rnnedge_smlad(rnnedge_sxtb16_ror8(xa_), hi, acc0);                                                 \
        acc1 = rnnedge_smlad(rnnedge_sxtb16(xb_), lo, acc1);                                                      \
        acc1 = rnnedge_smlad(rnnedge_sxtb16_ror8(xb_), hi, acc1);                                                 \
    } while (0)

/** Two rows at once, w and w + n (biases b0, b1), into out[0], out[1]: each LDRD of activations serves both rows;
 * sixteen activations per pass (four pair words), the count tested at the bottom: 44 instructions for the 32
 * products and 5 for the pointers and the test, then the n mod 16 rest. */
static void dot2_int8_pairs(int32_t b0, int32_t b1, const int8_t *w, const uint64_t *pairs, const int16_t *v,
                            int32_t n, int32_t *out)
{
    const int8_t *wa = w;
    const int8_t *wb = w + n;
    int32_t acc0 = b0;
    int32_t acc1 = b1;
    uint32_t lo;
    uint32_t hi;
    int32_t k = n >> 4;
    if (k > 0) {
        do {
            rnnedge_load_pair(pairs, &lo, &hi);
            DOT2_STEP(lo, hi, wa, wb);
            rnnedge_load_pair(pairs + 1, &lo, &hi);
            DOT2_STEP(lo, hi, wa + 4, wb + 4);
            rnnedge_load_pair(pairs + 2, &lo, &hi);
            DOT2_STEP(lo, hi, wa + 8, wb + 8);
            rnnedge_load_pair(pairs + 3, &lo, &hi);
            DOT2_STEP(lo, hi, wa + 12, wb + 12);
            wa += 16;
            wb += 16;
            pairs += 4;
        } while (--k != 0);
    }
    for (k = (n >> 2) & 3; k > 0; --k) {
        rnnedge_load_pair(pairs, &lo, &hi);
        DOT2_STEP(lo, hi, wa, wb);
        wa += 4;
        wb += 4;
        ++pairs;
    }
    out[0] = acc0;
    out[1] = acc1;
    if ((n & 3) != 0) {
        dot2_tail(w, v, n, out);
    }
}
#undef DOT2_STEP

/* One pair word (four activations) against four rows (dot4_int8_pairs): the LDRD, then per row one LDR of four
 * weights, SXTB16 and SXTB16 ROR 8, two SMLAD. Rows 1 and 3 are read at [w0 + n] and [w2 + n] before rows 0 and 2
 * post-increment w0 and w2, so three registers address the four rows. */
#define DOT4_ROW(a, load)                                                                                        \
    load "\n\t"                                                                                                   \
    "sxtb16 %[t], %[x]\n\t"                                                                                       \
    "smlad " a ", %[t], %[lo], " a "\n\t"                                                                         \
    "sxtb16 %[t], %[x], ror #8\n\t"                                                                               \
    "smlad " a ", %[t], %[hi], " a "\n\t"
#define DOT4_WORD                                                                                                 \
    "ldrd %[lo], %[hi], [%[p]], #8\n\t"                                                                           \
    DOT4_ROW("%[a1]", "ldr %[x], [%[w0], %[n]]")                                                                  \
    DOT4_ROW("%[a0]", "ldr %[x], [%[w0]], #4")                                                                    \
    DOT4_ROW("%[a3]", "ldr %[x], [%[w2], %[n]]")                                                                  \
    DOT4_ROW("%[a2]", "ldr %[x], [%[w2]], #4")

/** acc[k] += w_k . v for the four rows w_k = w + k n (k = 0..3): each LDRD of an activation pair word serves the
 * four rows. On the Cortex-M one asm loop of 21 instructions per pair word (16 products, 1.31 per product) and the
 * loop's compare and branch, unrolled twice: gcc -Os (and -O2) spills the four accumulators and four row pointers
 * of the C form. Elsewhere the same pairing in C. Then the n mod 4 tail from v. The four sums are exact in int32 as
 * dot_int8's, in any order. Inlined into its callers (the gate stage's block loop: no call per four rows). */
#if defined(__GNUC__)
__attribute__((always_inline)) inline
#endif
static void dot4_int8_pairs(const int8_t *w, const uint64_t *pairs, const int16_t *v, int32_t n, int32_t *acc)
{
    const int8_t *w0 = w;
    const int8_t *w2 = w + 2 * n;
    int32_t a0 = acc[0];
    int32_t a1 = acc[1];
    int32_t a2 = acc[2];
    int32_t a3 = acc[3];
    int32_t k;
#if RNNEDGE_HAVE_DSP
    uint32_t lo;
    uint32_t hi;
    uint32_t x;
    uint32_t t;
    const uint64_t *end = pairs + ((n >> 3) << 1);
    if (pairs != end) {
        __asm__("1:\n\t" DOT4_WORD DOT4_WORD
                "cmp %[p], %[end]\n\t"
                "bne 1b"
                : [a0] "+r"(a0), [a1] "+r"(a1), [a2] "+r"(a2), [a3] "+r"(a3), [p] "+r"(pairs), [w0] "+r"(w0),
                  [w2] "+r"(w2), [lo] "=&r"(lo), [hi] "=&r"(hi), [x] "=&r"(x), [t] "=&r"(t)
                : [n] "r"(n), [end] "r"(end)
                : "cc", "memory");
    }
    if ((n & 4) != 0) {
        __asm__(DOT4_WORD
                : [a0] "+r"(a0), [a1] "+r"(a1), [a2] "+r"(a2), [a3] "+r"(a3), [p] "+r"(pairs), [w0] "+r"(w0),
                  [w2] "+r"(w2), [lo] "=&r"(lo), [hi] "=&r"(hi), [x] "=&r"(x), [t] "=&r"(t)
                : [n] "r"(n)
                : "memory");
    }
#else
    for (k = n >> 2; k > 0; --k) {
        uint32_t lo;
        uint32_t hi;
        const uint32_t x0 = rnnedge_load_u32(w0);
        const uint32_t x1 = rnnedge_load_u32(w0 + n);
        const uint32_t x2 = rnnedge_load_u32(w2);
        const uint32_t x3 = rnnedge_load_u32(w2 + n);
        rnnedge_load_pair(pairs, &lo, &hi);
        ++pairs;
        w0 += 4;
        w2 += 4;
        a0 = rnnedge_smlad(rnnedge_sxtb16(x0), lo, a0);
        a0 = rnnedge_smlad(rnnedge_sxtb16_ror8(x0), hi, a0);
        a1 = rnnedge_smlad(rnnedge_sxtb16(x1), lo, a1);
        a1 = rnnedge_smlad(rnnedge_sxtb16_ror8(x1), hi, a1);
        a2 = rnnedge_smlad(rnnedge_sxtb16(x2), lo, a2);
        a2 = rnnedge_smlad(rnnedge_sxtb16_ror8(x2), hi, a2);
        a3 = rnnedge_smlad(rnnedge_sxtb16(x3), lo, a3);
        a3 = rnnedge_smlad(rnnedge_sxtb16_ror8(x3), hi, a3);
    }
#endif
    v += n & ~(int32_t)3;
    for (k = n & 3; k > 0; --k) {
        const int32_t vk = *v++;
        a0 += (int32_t)w0[0] * vk;
        a1 += (int32_t)w0[n] * vk;
        a2 += (int32_t)w2[0] * vk;
        a3 += (int32_t)w2[n] * vk;
        ++w0;
        ++w2;
    }
    acc[0] = a0;
    acc[1] = a1;
    acc[2] = a2;
    acc[3] = a3;
}
#undef DOT4_WORD
#undef DOT4_ROW
#endif

#endif /* RNNEDGE_DSP_H */
