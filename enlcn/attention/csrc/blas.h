// The matrix products of the native kernels: MKL's sgemm (row-major wrapper) and oneDNN's brgemm ukernel
// through ATen, with a probe that decides once per process whether brgemm can be used.
#pragma once

#include <ATen/Context.h>
#include <ATen/native/CPUBlas.h>

#include <algorithm>
#include <cctype>
#include <cmath>
#include <cstdint>
#include <cstdlib>
#include <mutex>
#include <string>
#include <vector>

// Fortran BLAS sgemm (MKL inside torch's x86 wheels); column-major.
extern "C" void sgemm_(const char*, const char*, const int*, const int*, const int*, const float*, const float*,
                       const int*, const float*, const int*, const float*, float*, const int*);

namespace enlcn_native {

// Row-major C[M×N] = A[M×K] · op(B) + beta·C, op(B) = B[K×N] or (transpose_b) Bᵀ with B stored [N×K].
// Row-major C = A·B is column-major Cᵀ = Bᵀ·Aᵀ, hence the swapped operands.
inline void matmul(int64_t M, int64_t N, int64_t K, const float* A, int64_t lda, const float* B, int64_t ldb,
            bool transpose_b, float beta, float* C, int64_t ldc) {
  const char ta = transpose_b ? 'T' : 'N', tb = 'N';
  const int m = (int)N, n = (int)M, k = (int)K, la = (int)ldb, lb = (int)lda, lc = (int)ldc;
  const float one = 1.f;
  sgemm_(&ta, &tb, &m, &n, &k, &one, B, &la, A, &lb, &beta, C, &lc);
}

// oneDNN's batch-reduce GEMM ukernel through ATen (float32: x86 with AVX-512): faster than MKL's sgemm on
// the kernels' block products here (2-core AMD EPYC: ~20 % on the ENLCA inference products, 2–3× on the
// exact-attention blocks). It takes no transposed operand, so the kernels copy or produce their operands
// in the orientation it needs. Used only where oneDNN's ukernel actually runs (onednn_brgemm_runs) and a
// probe on first use succeeds and matches sgemm; otherwise (or if ATen reports it unsupported) sgemm is
// used throughout, and uses_brgemm() says so.
inline bool brgemm_allowed = true;  // tests switch brgemm off to exercise the sgemm path on machines that have it

// Allow (default) or forbid brgemm in this extension; forbidden, sgemm runs every product (bound for the tests).
inline void allow_brgemm(bool allowed) { brgemm_allowed = allowed; }

// Whether ATen's float brgemm runs oneDNN's ukernel: only where oneDNN's effective instruction set is AVX2 or
// above (ATen's Brgemm::device_check); below, ATen falls back to its gemm, our sgemm's equal, with a probe
// that still passes. oneDNN's effective set is the CPU's, capped by ONEDNN_MAX_CPU_ISA when set (the generic
// level's cap is SSE41: LIBRARY_CAPS in native.py); its symbols are not exported, so the rule is re-read here.
inline bool onednn_brgemm_runs() {
  if (!at::globalContext().userEnabledMkldnn()) return false;
  if (!(__builtin_cpu_supports("avx2") && __builtin_cpu_supports("fma"))) return false;
  const char* cap = std::getenv("ONEDNN_MAX_CPU_ISA");
  if (cap == nullptr) cap = std::getenv("DNNL_MAX_CPU_ISA");  // oneDNN's older spelling
  if (cap == nullptr) return true;
  std::string isa(cap);
  std::transform(isa.begin(), isa.end(), isa.begin(), [](unsigned char ch) { return (char)std::toupper(ch); });
  return isa != "SSE41" && isa != "AVX";  // the two caps below AVX2
}

inline bool brgemm_usable() {
  if (!brgemm_allowed) return false;
  static std::once_flag once;
  static bool usable = false;
  std::call_once(once, [] {
    if (!onednn_brgemm_runs()) return;  // ATen's fallback would run: call sgemm ourselves and say so
    try {
      const int64_t M = 5, N = 33, K = 7;
      std::vector<float> A(M * K), B(K * N), C1(M * N, 0.f), C2(M * N, 0.f);
      for (int64_t q = 0; q < M * K; ++q) A[q] = 0.25f * (float)(q % 7) - 0.5f;
      for (int64_t q = 0; q < K * N; ++q) B[q] = 0.125f * (float)(q % 11) - 0.5f;
      at::native::cpublas::brgemm(M, N, K, K, N, N, false, A.data(), B.data(), C1.data(), false);
      at::native::cpublas::brgemm_release(false);
      matmul(M, N, K, A.data(), K, B.data(), N, false, 0.f, C2.data(), N);
      float diff = 0.f;
      for (int64_t q = 0; q < M * N; ++q) diff = std::max(diff, std::abs(C1[q] - C2[q]));
      usable = diff <= 1e-5f;
    } catch (...) {
      usable = false;
    }
  });
  return usable;
}

// Row-major C[M×N] = A[M×K] · B[K×N] (+ C when add): brgemm when `brgemm` (see brgemm_usable), else sgemm.
inline void matmul_nn(bool brgemm, int64_t M, int64_t N, int64_t K, const float* A, int64_t lda, const float* B,
                      int64_t ldb, float* C, int64_t ldc, bool add = false) {
  if (brgemm) {
    at::native::cpublas::brgemm(M, N, K, lda, ldb, ldc, add, A, B, C, false);
  } else {
    matmul(M, N, K, A, lda, B, ldb, false, add ? 1.f : 0.f, C, ldc);
  }
}

}  // namespace enlcn_native
