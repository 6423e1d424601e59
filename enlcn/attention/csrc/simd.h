// Width-generic SIMD for the native kernels: a vector `Vec` of kLanes floats and `VecU` of kLanes uint32
// (AVX-512: 16 lanes, AVX2 + FMA: 8, otherwise 1: plain scalars) and the few operations their loops use,
// so that each loop is written once and compiled at every instruction-set level (LEVELS in
// enlcn/attention/native.py). Lane masks are plain bit masks (bit i = lane i). A loop runs
// `for (; i + kLanes <= n; i += kLanes)` over whole vectors and finishes with its scalar tail; at the
// generic level the vector loop is the scalar loop (kLanes = 1) and leaves no tail.
// The AVX-512 forms are the intrinsics the kernels called before this header, so they compute the same
// numbers; the AVX2 ones compute the same per-lane arithmetic except exp (fast_exp.h: exp8 vs exp16).
#pragma once

#include <algorithm>
#include <cmath>
#include <cstdint>

#include "fast_exp.h"

#if defined(__AVX512F__) || (defined(__AVX2__) && defined(__FMA__))
#include <immintrin.h>
#endif

namespace enlcn_native {

// The instruction-set level this translation unit is compiled for; every extension exports it as isa()
// (native.py rejects a build whose level is not the one requested).
inline const char* isa() {
#if defined(__AVX512F__)
  return "avx512";
#elif defined(__AVX2__) && defined(__FMA__)
  return "avx2";
#else
  return "generic";
#endif
}

namespace simd {

inline int popcount(unsigned mask) { return __builtin_popcount(mask); }

#if defined(__AVX512F__)
constexpr int64_t kLanes = 16;
using Vec = __m512;
using VecU = __m512i;

inline Vec load(const float* p) { return _mm512_loadu_ps(p); }
inline void store(float* p, Vec v) { _mm512_storeu_ps(p, v); }
inline Vec set1(float x) { return _mm512_set1_ps(x); }
inline Vec zero() { return _mm512_setzero_ps(); }
inline Vec add(Vec a, Vec b) { return _mm512_add_ps(a, b); }
inline Vec sub(Vec a, Vec b) { return _mm512_sub_ps(a, b); }
inline Vec mul(Vec a, Vec b) { return _mm512_mul_ps(a, b); }
inline Vec fmadd(Vec a, Vec b, Vec c) { return _mm512_fmadd_ps(a, b, c); }  // a·b + c, one rounding
inline Vec min(Vec a, Vec b) { return _mm512_min_ps(a, b); }
inline Vec max(Vec a, Vec b) { return _mm512_max_ps(a, b); }
inline float reduce_add(Vec v) { return _mm512_reduce_add_ps(v); }
inline float reduce_min(Vec v) { return _mm512_reduce_min_ps(v); }
inline float reduce_max(Vec v) { return _mm512_reduce_max_ps(v); }
inline unsigned ge(Vec a, Vec b) { return _mm512_cmp_ps_mask(a, b, _CMP_GE_OQ); }  // lanes a ≥ b (ordered)
inline Vec exp(Vec x) { return exp16(x); }

// lanes < min(n, kLanes) set (n ≥ 1)
inline unsigned first(int64_t n) { return n >= 16 ? 0xFFFFu : (1u << n) - 1; }
inline VecU set1_u32(uint32_t x) { return _mm512_set1_epi32((int32_t)x); }
inline VecU lanes_u32() { return _mm512_setr_epi32(0, 1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 13, 14, 15); }
// p[0..min(n, kLanes)), the other lanes 0; nothing past them is read
inline VecU load_u32_first(const uint32_t* p, int64_t n) { return _mm512_maskz_loadu_epi32(first(n), p); }
inline VecU add_u32(VecU a, VecU b) { return _mm512_add_epi32(a, b); }
inline unsigned gt_u32(VecU a, VecU b) { return _mm512_cmpgt_epu32_mask(a, b); }  // unsigned a > b
inline unsigned eq_u32(VecU a, VecU b) { return _mm512_cmpeq_epu32_mask(a, b); }
inline unsigned lt_i32(VecU a, VecU b) { return _mm512_cmplt_epi32_mask(a, b); }  // signed a < b
// the lanes of v in `mask`, in lane order, to dst[0..popcount): all kLanes lanes are stored (those past the
// kept ones are unspecified), compressed in a register: a compress straight to memory is microcoded and
// slow on some cores (AMD Zen 4)
inline void store_compressed_u32(uint32_t* dst, VecU v, unsigned mask) {
  _mm512_storeu_si512(dst, _mm512_maskz_compress_epi32((__mmask16)mask, v));
}

#elif defined(__AVX2__) && defined(__FMA__)
constexpr int64_t kLanes = 8;
using Vec = __m256;
using VecU = __m256i;

inline Vec load(const float* p) { return _mm256_loadu_ps(p); }
inline void store(float* p, Vec v) { _mm256_storeu_ps(p, v); }
inline Vec set1(float x) { return _mm256_set1_ps(x); }
inline Vec zero() { return _mm256_setzero_ps(); }
inline Vec add(Vec a, Vec b) { return _mm256_add_ps(a, b); }
inline Vec sub(Vec a, Vec b) { return _mm256_sub_ps(a, b); }
inline Vec mul(Vec a, Vec b) { return _mm256_mul_ps(a, b); }
inline Vec fmadd(Vec a, Vec b, Vec c) { return _mm256_fmadd_ps(a, b, c); }
inline Vec min(Vec a, Vec b) { return _mm256_min_ps(a, b); }
inline Vec max(Vec a, Vec b) { return _mm256_max_ps(a, b); }
// horizontal reductions: the upper half onto the lower, then the upper pair, then the odd lane
inline float reduce_add(Vec v) {
  __m128 h = _mm_add_ps(_mm256_castps256_ps128(v), _mm256_extractf128_ps(v, 1));
  h = _mm_add_ps(h, _mm_movehl_ps(h, h));
  return _mm_cvtss_f32(_mm_add_ss(h, _mm_movehdup_ps(h)));
}
inline float reduce_min(Vec v) {
  __m128 h = _mm_min_ps(_mm256_castps256_ps128(v), _mm256_extractf128_ps(v, 1));
  h = _mm_min_ps(h, _mm_movehl_ps(h, h));
  return _mm_cvtss_f32(_mm_min_ss(h, _mm_movehdup_ps(h)));
}
inline float reduce_max(Vec v) {
  __m128 h = _mm_max_ps(_mm256_castps256_ps128(v), _mm256_extractf128_ps(v, 1));
  h = _mm_max_ps(h, _mm_movehl_ps(h, h));
  return _mm_cvtss_f32(_mm_max_ss(h, _mm_movehdup_ps(h)));
}
inline unsigned ge(Vec a, Vec b) { return (unsigned)_mm256_movemask_ps(_mm256_cmp_ps(a, b, _CMP_GE_OQ)); }
inline Vec exp(Vec x) { return exp8(x); }

inline unsigned first(int64_t n) { return n >= 8 ? 0xFFu : (1u << n) - 1; }
inline VecU set1_u32(uint32_t x) { return _mm256_set1_epi32((int32_t)x); }
inline VecU lanes_u32() { return _mm256_setr_epi32(0, 1, 2, 3, 4, 5, 6, 7); }
inline unsigned bits(VecU lanes) { return (unsigned)_mm256_movemask_ps(_mm256_castsi256_ps(lanes)); }
// AVX2 has no masked float or uint32 load that zeroes; maskload does (lanes whose mask's top bit is clear)
inline VecU load_u32_first(const uint32_t* p, int64_t n) {
  if (n >= 8) return _mm256_loadu_si256(reinterpret_cast<const __m256i*>(p));
  const __m256i mask = _mm256_cmpgt_epi32(_mm256_set1_epi32((int32_t)n), lanes_u32());
  return _mm256_maskload_epi32(reinterpret_cast<const int*>(p), mask);
}
inline VecU add_u32(VecU a, VecU b) { return _mm256_add_epi32(a, b); }
// AVX2 compares signed only: flipping the top bit of both maps the unsigned order onto the signed one
inline unsigned gt_u32(VecU a, VecU b) {
  const __m256i top = _mm256_set1_epi32(INT32_MIN);
  return bits(_mm256_cmpgt_epi32(_mm256_xor_si256(a, top), _mm256_xor_si256(b, top)));
}
inline unsigned eq_u32(VecU a, VecU b) { return bits(_mm256_cmpeq_epi32(a, b)); }
inline unsigned lt_i32(VecU a, VecU b) { return bits(_mm256_cmpgt_epi32(b, a)); }

// AVX2 has no compress: for each 8-bit mask, the kept lanes' indices packed one per byte (a 2 KiB table
// built at compile time), widened to a permutation of the lanes
struct CompressTable {
  uint64_t perm[256];
};
constexpr CompressTable make_compress_table() {
  CompressTable t{};
  for (unsigned mask = 0; mask < 256; ++mask) {
    int kept = 0;
    for (int lane = 0; lane < 8; ++lane)
      if ((mask >> lane) & 1u) t.perm[mask] |= uint64_t(lane) << (8 * kept++);
  }
  return t;
}
inline constexpr CompressTable kCompress = make_compress_table();
inline void store_compressed_u32(uint32_t* dst, VecU v, unsigned mask) {
  const __m256i perm = _mm256_cvtepu8_epi32(_mm_cvtsi64_si128((long long)kCompress.perm[mask & 0xFFu]));
  _mm256_storeu_si256(reinterpret_cast<__m256i*>(dst), _mm256_permutevar8x32_epi32(v, perm));
}

#else
constexpr int64_t kLanes = 1;
using Vec = float;
using VecU = uint32_t;

inline Vec load(const float* p) { return *p; }
inline void store(float* p, Vec v) { *p = v; }
inline Vec set1(float x) { return x; }
inline Vec zero() { return 0.f; }
inline Vec add(Vec a, Vec b) { return a + b; }
inline Vec sub(Vec a, Vec b) { return a - b; }
inline Vec mul(Vec a, Vec b) { return a * b; }
inline Vec fmadd(Vec a, Vec b, Vec c) { return std::fma(a, b, c); }
inline Vec min(Vec a, Vec b) { return b < a ? b : a; }
inline Vec max(Vec a, Vec b) { return b > a ? b : a; }
inline float reduce_add(Vec v) { return v; }
inline float reduce_min(Vec v) { return v; }
inline float reduce_max(Vec v) { return v; }
inline unsigned ge(Vec a, Vec b) { return a >= b; }
inline Vec exp(Vec x) { return exp_scalar(x); }

inline unsigned first(int64_t n) { return n >= 1; }
inline VecU set1_u32(uint32_t x) { return x; }
inline VecU lanes_u32() { return 0; }
inline VecU load_u32_first(const uint32_t* p, int64_t n) { return n >= 1 ? *p : 0; }
inline VecU add_u32(VecU a, VecU b) { return a + b; }
inline unsigned gt_u32(VecU a, VecU b) { return a > b; }
inline unsigned eq_u32(VecU a, VecU b) { return a == b; }
inline unsigned lt_i32(VecU a, VecU b) { return (int32_t)a < (int32_t)b; }
inline void store_compressed_u32(uint32_t* dst, VecU v, unsigned) { *dst = v; }
#endif

}  // namespace simd
}  // namespace enlcn_native
