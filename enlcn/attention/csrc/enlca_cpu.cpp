// Native CPU kernel of ENLCA's inference path: the algebra of enlcn/attention/fast.py (_enlca_whole),
// computed over blocks of `block` tokens that stay in the L2 cache, with each thread owning whole blocks.
//
// Why: the Python fused path runs every product over the whole image (N = 22500 at 150×150), so each
// product is a skinny BLAS call that streams (m+1)×N feature maps through memory, with BLAS threading
// every call separately. Here the same products run per block in one parallel region: the feature map of
// a block (≤ (m+1)×block floats) is produced, exponentiated and consumed while it is in cache. The
// arithmetic is unchanged (same products, same constant shifts); only exp is our own polynomial (≤ 2 ulp,
// checked against torch.exp by the tests) and the division is a multiplication by the reciprocal.
//
// Per image X (C×N, the NCHW image viewed as a matrix), with c = C/reduction, z = c + 2, rows = m (+1):
//   phase 1, per block b (parallel):  E = W_qk X_b + b_qk                   [2c, w]
//                                     Zq_b = [Q; ‖Q‖²; 1], Zk = [K; ‖K‖²; 1] [z, w]
//                                     Φk = exp(P_k Zk) + eps_k              [m, w] (stored [w, m] with brgemm)
//                                     acc_t += X_b Φkᵀ ; ksum_t += Φk 1    [C, m], [m]
//   reduce:                           ctx = [[res·(W_v XΦᵀ + b_v ksumᵀ), ·]; [ksumᵀ, ·]]   [C+1, rows]
//   phase 2, per block b (parallel):  Φq = exp(P_q Zq_b)                    [rows, w]
//                                     R = ctx Φq                            [C+1, w]
//                                     Y_b = X_b + R[:C] / R[C]
#include "torch_ext.h"
#include <ATen/native/CPUBlas.h>
#include <omp.h>

#include <algorithm>
#include <cmath>
#include <cstdint>
#include <cstring>
#include <mutex>
#include <vector>

#include "blas.h"
#include "fast_exp.h"
#include "simd.h"

namespace {

namespace simd = enlcn_native::simd;
using enlcn_native::exp_scalar;
using enlcn_native::brgemm_usable;
using enlcn_native::matmul;
using enlcn_native::matmul_nn;

// a[r][u] ← exp(a[r][u]) + add for r < rows, u < w (row stride ld); sums[r] += Σ_u a[r][u] (if sums).
void exp_rows(float* a, int64_t rows, int64_t w, int64_t ld, float add, float* sums) {
  for (int64_t r = 0; r < rows; ++r) {
    float* row = a + r * ld;
    float total = 0.f;
    int64_t u = 0;
    const simd::Vec va = simd::set1(add);  // whole vectors (all of the row at the generic level), then the tail
    simd::Vec acc = simd::zero();
    for (; u + simd::kLanes <= w; u += simd::kLanes) {
      const simd::Vec v = simd::add(simd::exp(simd::load(row + u)), va);
      simd::store(row + u, v);
      acc = simd::add(acc, v);
    }
    total = simd::reduce_add(acc);
    for (; u < w; ++u) {
      const float v = exp_scalar(row[u]) + add;
      row[u] = v;
      total += v;
    }
    if (sums) sums[r] += total;
  }
}

// a[u][q] ← exp(a[u][q]) + add for u < rows, q < cols (row stride = cols); sums[q] += Σ_u a[u][q].
void exp_cols(float* a, int64_t rows, int64_t cols, float add, float* sums) {
  for (int64_t u = 0; u < rows; ++u) {
    float* row = a + u * cols;
    int64_t q = 0;
    const simd::Vec va = simd::set1(add);
    for (; q + simd::kLanes <= cols; q += simd::kLanes) {
      const simd::Vec v = simd::add(simd::exp(simd::load(row + q)), va);
      simd::store(row + q, v);
      simd::store(sums + q, simd::add(simd::load(sums + q), v));
    }
    for (; q < cols; ++q) {
      const float v = exp_scalar(row[q]) + add;
      row[q] = v;
      sums[q] += v;
    }
  }
}

// Q (or K) = scale·E / max(‖E‖, eps) per token, written as Z = [Q; ‖Q‖²; 1] ([c+2, w], row stride ldz).
// E: [c, w] with row stride lde, bias not yet added (added here).
void normalise(float* E, int64_t c, int64_t w, int64_t lde, const float* bias, float scale, float eps, float* Z,
               int64_t ldz, float* tmp) {
  std::fill(tmp, tmp + w, 0.f);
  for (int64_t r = 0; r < c; ++r) {
    float* row = E + r * lde;
    const float b = bias[r];
#pragma omp simd
    for (int64_t u = 0; u < w; ++u) {
      const float v = row[u] + b;
      row[u] = v;
      tmp[u] += v * v;
    }
  }
  float* sq = Z + c * ldz;
  float* ones = Z + (c + 1) * ldz;
#pragma omp simd
  for (int64_t u = 0; u < w; ++u) {
    const float norm = std::sqrt(tmp[u]);
    const float inv = scale / std::max(norm, eps);
    const float q = norm * inv;  // ‖Q‖, per token (< √k when the norm is below eps)
    tmp[u] = inv;
    sq[u] = q * q;
    ones[u] = 1.f;
  }
  for (int64_t r = 0; r < c; ++r) {
    const float* row = E + r * lde;
    float* out = Z + r * ldz;
#pragma omp simd
    for (int64_t u = 0; u < w; ++u) out[u] = row[u] * tmp[u];
  }
}

}  // namespace

// x [B, C, H, W] float32 contiguous; w_qk [2c, C]; b_qk [2c]; p_q [rows, c+2]; p_k [m, c+2]; w_v [C, C];
// b_v [C]. See enlcn/attention/native.py for the meaning of p_q, p_k, eps_k (built there from the module).
at::Tensor enlca_forward(const at::Tensor& x, const at::Tensor& w_qk, const at::Tensor& b_qk,
                            const at::Tensor& p_q, const at::Tensor& p_k, const at::Tensor& w_v,
                            const at::Tensor& b_v, double scale, double norm_eps, double eps_k,
                            double res_scale, int64_t block) {
  for (const auto* t : {&x, &w_qk, &b_qk, &p_q, &p_k, &w_v, &b_v}) {
    TORCH_CHECK(t->device().is_cpu() && t->scalar_type() == at::kFloat && t->is_contiguous(),
                "enlca_forward: every tensor must be a contiguous float32 CPU tensor");
  }
  TORCH_CHECK(x.dim() == 4 && block >= 16, "enlca_forward: x must be B×C×H×W and block ≥ 16");
  const int64_t B = x.size(0), C = x.size(1), N = x.size(2) * x.size(3);
  const int64_t c = w_qk.size(0) / 2, z = c + 2, m = p_k.size(0), rows = p_q.size(0);
  TORCH_CHECK(w_qk.size(1) == C && b_qk.numel() == 2 * c && p_q.size(1) == z && p_k.size(1) == z &&
                  (rows == m || rows == m + 1) && w_v.size(0) == C && w_v.size(1) == C && b_v.numel() == C,
              "enlca_forward: inconsistent shapes");
  const bool eps_row = rows == m + 1;
  auto out = at::empty_like(x);
  const int64_t blocks = (N + block - 1) / block;
  const int threads = at::get_num_threads();
  std::vector<float> zq(blocks * z * block);                      // [blocks][z][block]: Zq of every block
  std::vector<float> acc((size_t)threads * C * m), ksum((size_t)threads * m);  // per-thread X Φkᵀ, Φk 1
  std::vector<float> xk(C * m), ks(m), ctx((C + 1) * rows);
  const float *wqk = w_qk.data_ptr<float>(), *bqk = b_qk.data_ptr<float>();
  const float *pq = p_q.data_ptr<float>(), *pk = p_k.data_ptr<float>(), *bv = b_v.data_ptr<float>();
  const float sc = (float)scale, ne = (float)norm_eps, add_k = (float)eps_k;
  const bool fast_mm = brgemm_usable();
  std::vector<float> pk_t(z * m);  // P_kᵀ [z, m] for the token-major key features
  for (int64_t r = 0; r < m; ++r)
    for (int64_t q = 0; q < z; ++q) pk_t[q * m + r] = pk[r * z + q];

  for (int64_t i = 0; i < B; ++i) {
    const float* xi = x.data_ptr<float>() + i * C * N;  // [C, N]
    float* yi = out.data_ptr<float>() + i * C * N;
    std::fill(acc.begin(), acc.end(), 0.f);
    std::fill(ksum.begin(), ksum.end(), 0.f);

    // -- phase 1: embeddings, Zq for phase 2, and the key side's sums -------------------------------
    // static schedule: each thread always gets the same blocks, so the per-thread sums and their fixed-order
    // reduction make the output bitwise reproducible for a given thread count (dynamic was not faster)
#pragma omp parallel num_threads(threads)
    {
      const int t = omp_get_thread_num();
      std::vector<float> emb(2 * c * block), zk(z * block), zk_t(block * z), feat(m * block), tmp(block);
#pragma omp for schedule(static)
      for (int64_t b = 0; b < blocks; ++b) {
        const int64_t j = b * block, w = std::min(block, N - j);
        matmul_nn(fast_mm, 2 * c, w, C, wqk, C, xi + j, N, emb.data(), block);  // [θ; δ] without bias
        normalise(emb.data(), c, w, block, bqk, sc, ne, zq.data() + b * z * block, block, tmp.data());
        normalise(emb.data() + c * block, c, w, block, bqk + c, sc, ne, zk.data(), block, tmp.data());
        if (fast_mm) {  // token-major Φkᵀ [w, m], so that X Φkᵀ is an untransposed brgemm too
          for (int64_t r = 0; r < z; ++r)
            for (int64_t u = 0; u < w; ++u) zk_t[u * z + r] = zk[r * block + u];
          at::native::cpublas::brgemm(w, m, z, z, m, m, false, zk_t.data(), pk_t.data(), feat.data(), false);
          exp_cols(feat.data(), w, m, add_k, ksum.data() + t * m);  // Φkᵀ = exp(·) + eps_k, column sums
          at::native::cpublas::brgemm(C, m, w, N, m, m, true, xi + j, feat.data(), acc.data() + t * C * m, false);
        } else {
          matmul(m, w, z, pk, z, zk.data(), block, false, 0.f, feat.data(), block);  // F K − ‖K‖²/2 − s_k
          exp_rows(feat.data(), m, w, block, add_k, ksum.data() + t * m);          // Φk = exp(·) + eps_k
          matmul(C, m, w, xi + j, N, feat.data(), block, true, 1.f, acc.data() + t * C * m, m);  // += X Φkᵀ
        }
      }
      if (fast_mm) at::native::cpublas::brgemm_release(false);
    }

    // -- the context: sums of the threads, value embedding by linearity, eps column ------------------
    std::fill(xk.begin(), xk.end(), 0.f);
    std::fill(ks.begin(), ks.end(), 0.f);
    for (int t = 0; t < threads; ++t) {
      for (int64_t q = 0; q < C * m; ++q) xk[q] += acc[t * C * m + q];
      for (int64_t q = 0; q < m; ++q) ks[q] += ksum[t * m + q];
    }
    matmul(C, m, C, w_v.data_ptr<float>(), C, xk.data(), m, false, 0.f, ctx.data(), rows);  // W_v X Φkᵀ
    for (int64_t r = 0; r < C; ++r)
      for (int64_t q = 0; q < m; ++q) ctx[r * rows + q] = (ctx[r * rows + q] + bv[r] * ks[q]) * (float)res_scale;
    for (int64_t q = 0; q < m; ++q) ctx[C * rows + q] = ks[q];
    if (eps_row) {  // multiplies the eps row of Φq: the row sums of the context
      for (int64_t r = 0; r <= C; ++r) {
        float s = 0.f;
        for (int64_t q = 0; q < m; ++q) s += ctx[r * rows + q];
        ctx[r * rows + m] = s;
      }
    }

    // -- phase 2: queries, numerator and normaliser in one product, the residual -----------------------
#pragma omp parallel num_threads(threads)
    {
      std::vector<float> feat(rows * block), res((C + 1) * block), inv(block);
#pragma omp for schedule(static)
      for (int64_t b = 0; b < blocks; ++b) {
        const int64_t j = b * block, w = std::min(block, N - j);
        matmul_nn(fast_mm, rows, w, z, pq, z, zq.data() + b * z * block, block, feat.data(), block);
        exp_rows(feat.data(), rows, w, block, 0.f, nullptr);
        matmul_nn(fast_mm, C + 1, w, rows, ctx.data(), rows, feat.data(), block, res.data(), block);
        const float* den = res.data() + C * block;
#pragma omp simd
        for (int64_t u = 0; u < w; ++u) inv[u] = 1.f / den[u];
        for (int64_t r = 0; r < C; ++r) {
          const float *xr = xi + r * N + j, *rr = res.data() + r * block;
          float* yr = yi + r * N + j;
#pragma omp simd
          for (int64_t u = 0; u < w; ++u) yr[u] = xr[u] + rr[u] * inv[u];
        }
      }
      if (fast_mm) at::native::cpublas::brgemm_release(false);
    }
  }
  return out;
}

// exp as the kernel computes it (for the accuracy test)
at::Tensor fast_exp(const at::Tensor& a) {
  TORCH_CHECK(a.device().is_cpu() && a.scalar_type() == at::kFloat, "fast_exp: float32 CPU tensor");
  auto out = a.contiguous().clone();
  exp_rows(out.data_ptr<float>(), 1, out.numel(), out.numel(), 0.f, nullptr);
  return out;
}

PYBIND11_MODULE(TORCH_EXTENSION_NAME, m) {
  m.def("enlca_forward", &enlca_forward, "ENLCA inference forward (see enlcn/attention/native.py)");
  m.def("fast_exp", &fast_exp, "the kernel's exp, elementwise");
  m.def("isa", &enlcn_native::isa, "the instruction-set level it was compiled for: avx512, avx2 or generic");
  m.def("uses_brgemm", &enlcn_native::brgemm_usable, "whether the block products run on oneDNN's brgemm (else sgemm)");
  m.def("allow_brgemm", &enlcn_native::allow_brgemm, "allow (default) or forbid brgemm; forbidden, sgemm runs every product");
}
