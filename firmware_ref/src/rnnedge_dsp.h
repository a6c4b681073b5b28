/*
 * rnnedge_dsp.h: the few Armv7E-M DSP instructions the int8 dot product uses, as inline functions.
 *
 * Where the compiler targets the DSP extension (__ARM_FEATURE_DSP: Cortex-M4, M7, M33 with DSP, ...) each one is
 * the ACLE intrinsic of <arm_acle.h>, one instruction; elsewhere (the host, Cortex-M3, RISC-V) it is plain C that
 * computes the same bits, so a host build with RNNEDGE_DSP_DOT 1 runs the DSP kernel's pairing and ordering
 * logic instruction for instruction, only slower. The names carry the rnnedge_ prefix rather than CMSIS's __SMLAD
 * spellings: identifiers starting with two underscores are the implementation's, and an application that includes
 * CMSIS headers next to this one must not see them defined twice.
 *
 * RNNEDGE_DSP_DOT (default: 1 where __ARM_FEATURE_DSP is defined, else 0) selects the dot product built on these
 * (src/rnnedge_int8.c); define it to 0 or 1 on the command line to force either path.
 */
#ifndef RNNEDGE_DSP_H
#define RNNEDGE_DSP_H

#include <stdint.h>
#include <string.h>

#if defined(__ARM_FEATURE_DSP) && __ARM_FEATURE_DSP
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

/** The two 32-bit halves of the 8-byte-aligned word at p: one LDRD (gcc -Os loads a uint64_t as two LDR). */
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

static inline uint32_t rnnedge_sxtb16(uint32_t w)
{
    return rnnedge_pack16(rnnedge_byte(w, 0), rnnedge_byte(w, 2));
}

static inline uint32_t rnnedge_sxtb16_ror8(uint32_t w)
{
    return rnnedge_pack16(rnnedge_byte(w, 1), rnnedge_byte(w, 3));
}

/** The DSP path's callers never overflow int32 here (see rnnedge_int8.c's dot product), so plain int32
 * arithmetic matches the instruction's wrapping result. */
static inline int32_t rnnedge_smlad(uint32_t a, uint32_t b, int32_t acc)
{
    return acc + rnnedge_half(a, 0) * rnnedge_half(b, 0) + rnnedge_half(a, 1) * rnnedge_half(b, 1);
}

#endif /* RNNEDGE_HAVE_DSP */

#endif /* RNNEDGE_DSP_H */
