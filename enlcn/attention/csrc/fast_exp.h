// The float32 exp of the native kernels: a Cody–Waite reduction and a degree-6 polynomial (≤ 2 ulp against
// torch.exp on the arguments the kernels see; tests/test_native.py). Scalar form, 16 lanes with AVX-512 and
// 8 lanes with AVX2 + FMA (simd.h picks the one of the level compiled for).
#pragma once

#include <algorithm>
#include <cmath>
#include <cstdint>
#include <cstring>

#if defined(__AVX512F__) || (defined(__AVX2__) && defined(__FMA__))
#include <immintrin.h>
#endif

namespace enlcn_native {

// Cody–Waite reduction and a degree-6 polynomial: exp(x) = 2^n · e^r, n = round(x / ln 2),
// r = x − n·ln 2 ∈ [−ln2/2, ln2/2] (ln 2 split in a part exact in float and a correction).
constexpr float kLog2e = 1.44269504088896341f, kLn2Hi = 0.693359375f, kLn2Lo = -2.12194440e-4f;
constexpr float kP[6] = {1.9875691500e-4f, 1.3981999507e-3f, 8.3334519073e-3f,
                         4.1665795894e-2f, 1.6666665459e-1f, 5.0000001201e-1f};
constexpr float kMinArg = -87.0f;  // below: the result would be subnormal; clamped (exp(−87) ≈ 1.6e-38)

inline float exp_scalar(float x) {
  // NaN stays NaN (std::max/min return their first argument when a comparison with NaN fails);
  // arguments above 88 saturate at e^88 ≈ 1.7e38 instead of overflowing (the kernel's arguments are ≤ 0)
  x = std::min(std::max(x, kMinArg), 88.0f);
  const float n = std::nearbyint(x * kLog2e);
  const float r = (x - n * kLn2Hi) - n * kLn2Lo;
  float p = kP[0];
  for (int i = 1; i < 6; ++i) p = p * r + kP[i];
  const int32_t bits = ((int32_t)n + 127) << 23;  // 2^n, n ∈ [−126, 127]
  float two_n;
  std::memcpy(&two_n, &bits, sizeof two_n);
  return (p * r * r + r + 1.0f) * two_n;
}

#if defined(__AVX512F__)
inline __m512 exp16(__m512 x) {
  x = _mm512_max_ps(_mm512_set1_ps(kMinArg), x);  // max(a, b) returns b when either is NaN
  const __m512 n = _mm512_roundscale_ps(_mm512_mul_ps(x, _mm512_set1_ps(kLog2e)),
                                        _MM_FROUND_TO_NEAREST_INT | _MM_FROUND_NO_EXC);
  __m512 r = _mm512_fnmadd_ps(n, _mm512_set1_ps(kLn2Hi), x);
  r = _mm512_fnmadd_ps(n, _mm512_set1_ps(kLn2Lo), r);
  __m512 p = _mm512_set1_ps(kP[0]);
  for (int i = 1; i < 6; ++i) p = _mm512_fmadd_ps(p, r, _mm512_set1_ps(kP[i]));
  p = _mm512_fmadd_ps(_mm512_mul_ps(p, r), r, _mm512_add_ps(r, _mm512_set1_ps(1.0f)));
  return _mm512_scalef_ps(p, n);
}
#elif defined(__AVX2__) && defined(__FMA__)
// exp16's steps on 8 lanes; AVX2 has no scalef, so 2^n is built in the exponent field as exp_scalar does,
// which needs n ≤ 127: arguments above 88 saturate as in exp_scalar (min(a, b) returns b when either is NaN)
inline __m256 exp8(__m256 x) {
  x = _mm256_min_ps(_mm256_set1_ps(88.0f), _mm256_max_ps(_mm256_set1_ps(kMinArg), x));
  const __m256 n = _mm256_round_ps(_mm256_mul_ps(x, _mm256_set1_ps(kLog2e)),
                                   _MM_FROUND_TO_NEAREST_INT | _MM_FROUND_NO_EXC);
  __m256 r = _mm256_fnmadd_ps(n, _mm256_set1_ps(kLn2Hi), x);
  r = _mm256_fnmadd_ps(n, _mm256_set1_ps(kLn2Lo), r);
  __m256 p = _mm256_set1_ps(kP[0]);
  for (int i = 1; i < 6; ++i) p = _mm256_fmadd_ps(p, r, _mm256_set1_ps(kP[i]));
  p = _mm256_fmadd_ps(_mm256_mul_ps(p, r), r, _mm256_add_ps(r, _mm256_set1_ps(1.0f)));
  const __m256i bits = _mm256_slli_epi32(_mm256_add_epi32(_mm256_cvtps_epi32(n), _mm256_set1_epi32(127)), 23);
  return _mm256_mul_ps(p, _mm256_castsi256_ps(bits));  // · 2^n, n ∈ [−126, 127]
}
#endif

}  // namespace enlcn_native
