/*
 * Branch-free single-precision exp, tanh and erf that the compiler can
 * vectorise inside `omp simd` loops.  libm's expf/tanhf/erff are scalar calls
 * that block vectorisation, and PyTorch's CPU kernels use vectorised (SLEEF)
 * versions, so matching its speed on softmax and GELU needs these.
 *
 * Accuracy (checked against double-precision references over the whole float
 * range by the golden tests): exp ~1 ulp (Cephes expf polynomial), tanh ~2 ulp
 * (Cephes tanhf: odd polynomial below 0.625, 1 - 2/(e^2x + 1) above), erf
 * ~1 ulp (rational minimax on [-4, 4], the approximation Eigen uses; |erf| is
 * 1.0f beyond 4).  Special values: exp(-inf) = 0, exp(+inf) = inf, NaN in ->
 * NaN out.  No float -> int conversions are used (they are undefined for NaN),
 * the exponent is built from bits with unsigned arithmetic.
 */
#ifndef GENIE_CPU_VMATH_H
#define GENIE_CPU_VMATH_H

#include <stdint.h>
#include <string.h>

static inline float cpu_bits_to_f32(uint32_t u)
{
    float f;

    memcpy(&f, &u, sizeof(f));
    return f;
}

static inline uint32_t cpu_f32_to_bits(float f)
{
    uint32_t u;

    memcpy(&u, &f, sizeof(u));
    return u;
}

static inline float cpu_expf(float x)
{
    /* Clamp so that 2^n stays representable as two normal factors; beyond
     * these bounds the result is 0 (denormal underflow) or inf anyway. */
    x = x > 89.0f ? 89.0f : x;
    x = x < -104.0f ? -104.0f : x;
    /* n = round(x / ln2) via the 1.5 * 2^23 trick: the integer lands in the
     * low mantissa bits of t. */
    float t = x * 1.44269504088896341f + 12582912.0f;
    float n = t - 12582912.0f;
    uint32_t ni = cpu_f32_to_bits(t) - 0x4B400000u;
    float r = x - n * 0.693359375f;
    r = r - n * -2.12194440e-4f;
    float p = 1.9875691500e-4f;
    p = p * r + 1.3981999507e-3f;
    p = p * r + 8.3334519073e-3f;
    p = p * r + 4.1665795894e-2f;
    p = p * r + 1.6666665459e-1f;
    p = p * r + 5.0000001201e-1f;
    p = p * r * r + r + 1.0f;
    /* 2^n split as 2^e1 * 2^e2 so that n = 128 (overflow) and n < -126
     * (denormal results) are handled by the multiplications themselves. */
    uint32_t e1 = (uint32_t)((int32_t)ni >> 1);
    uint32_t e2 = ni - e1;
    float s1 = cpu_bits_to_f32((e1 + 127u) << 23);
    float s2 = cpu_bits_to_f32((e2 + 127u) << 23);
    return p * s1 * s2;
}

static inline float cpu_tanhf(float x)
{
    float ax = x < 0.0f ? -x : x;
    float z = x * x;
    float small = ((((-5.70498872745e-3f * z + 2.06390887954e-2f) * z - 5.37397155531e-2f) * z +
                    1.33314422036e-1f) * z - 3.33332819422e-1f) * z * x + x;
    float e = cpu_expf(2.0f * ax);
    float big = 1.0f - 2.0f / (e + 1.0f);
    big = x < 0.0f ? -big : big;
    return ax < 0.625f ? small : big;
}

static inline float cpu_erff(float x)
{
    float c = x > 4.0f ? 4.0f : (x < -4.0f ? -4.0f : x);
    float x2 = c * c;
    float p = -2.72614225801306e-10f;
    p = p * x2 + 2.77068142495902e-08f;
    p = p * x2 + -2.10102402082508e-06f;
    p = p * x2 + -5.69250639462346e-05f;
    p = p * x2 + -7.34990630326855e-04f;
    p = p * x2 + -2.95459980854025e-03f;
    p = p * x2 + -1.60960333262415e-02f;
    p = p * c;
    float q = -1.45660718464996e-05f;
    q = q * x2 + -2.13374055278905e-04f;
    q = q * x2 + -1.68282697438203e-03f;
    q = q * x2 + -7.37332916720468e-03f;
    q = q * x2 + -1.42647390514189e-02f;
    return p / q;
}

static inline float cpu_sigmoidf(float x)
{
    return 1.0f / (1.0f + cpu_expf(-x));
}

#endif
