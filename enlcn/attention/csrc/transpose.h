// Matrix transposes for the native kernels: dst = srcᵀ for row-major float matrices with row strides.
#pragma once

#include <cstdint>

#if defined(__AVX2__)
#include <immintrin.h>
#endif

namespace enlcn_native {

#if defined(__AVX2__)
// dst[c][r] = src[r][c] for an 8×8 block, in registers (the classic unpack / shuffle / permute transpose)
inline void transpose8x8(const float* src, int64_t lds, float* dst, int64_t ldd) {
  __m256 r[8], t[8];
  for (int i = 0; i < 8; ++i) r[i] = _mm256_loadu_ps(src + i * lds);
  for (int i = 0; i < 8; i += 2) {
    t[i] = _mm256_unpacklo_ps(r[i], r[i + 1]);
    t[i + 1] = _mm256_unpackhi_ps(r[i], r[i + 1]);
  }
  for (int i = 0; i < 8; i += 4) {
    r[i] = _mm256_shuffle_ps(t[i], t[i + 2], 0x44);
    r[i + 1] = _mm256_shuffle_ps(t[i], t[i + 2], 0xEE);
    r[i + 2] = _mm256_shuffle_ps(t[i + 1], t[i + 3], 0x44);
    r[i + 3] = _mm256_shuffle_ps(t[i + 1], t[i + 3], 0xEE);
  }
  for (int i = 0; i < 4; ++i) {
    _mm256_storeu_ps(dst + i * ldd, _mm256_permute2f128_ps(r[i], r[i + 4], 0x20));
    _mm256_storeu_ps(dst + (i + 4) * ldd, _mm256_permute2f128_ps(r[i], r[i + 4], 0x31));
  }
}
#endif

// dst[c][r] = src[r][c] for r < rows, c < cols (src row stride lds, dst row stride ldd). A scalar double
// loop strides one side by whole rows of 1024 floats (4 KiB), which aliases in the L1 cache: measured, it
// was most of the ENLA training kernel's time. 8×8 blocks transposed in registers touch each line once.
inline void transpose(const float* src, int64_t rows, int64_t cols, int64_t lds, float* dst, int64_t ldd) {
  int64_t r0 = 0, c0 = 0;
#if defined(__AVX2__)
  for (; r0 + 8 <= rows; r0 += 8)
    for (int64_t c = 0; c + 8 <= cols; c += 8) transpose8x8(src + r0 * lds + c, lds, dst + c * ldd + r0, ldd);
  c0 = cols - cols % 8;
  for (int64_t r = 0; r < r0; ++r)  // the columns past the last full block, for the rows done above
    for (int64_t c = c0; c < cols; ++c) dst[c * ldd + r] = src[r * lds + c];
#endif
  for (int64_t r = r0; r < rows; ++r)  // the rows past the last full block (all of them without AVX2)
    for (int64_t c = 0; c < cols; ++c) dst[c * ldd + r] = src[r * lds + c];
}

}  // namespace enlcn_native
