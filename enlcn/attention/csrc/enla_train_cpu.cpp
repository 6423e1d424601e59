// Native CPU kernel of the ENLA/ENLCA module's training step after its embedding: Eq. 3's normalisation,
// Eq. 4's shifted random features and Eqs. 5–6's aggregation, forward and backward. The same algebra as
// enlcn/attention/enla_autograd.py (_FusedENLA) plus the normalisation of ENLCA.embed, so that none of
// the ~45 small PyTorch ops of that path (each a pass over [B, N, ·]) runs.
//
// Layout: the embedding's output `maps` [B, N, 2c + C] comes in token-major (ENLCA.embedding_maps: a linear
// map of the tokens) and Y [B, N, C] goes out token-major, like the Python path's, so the module's output
// keeps the channels_last layout the rest of the model then runs in. Inside, each image is transposed to
// channel-major once per direction (it is in cache: 72×1024 floats at the study's shapes) and one parallel
// region per direction does the work per image, every product on oneDNN's brgemm (blas.h; sgemm where
// brgemm is unusable) and the exp on our polynomial (fast_exp.h).
//
// Per image, with θ, δ [c, N] and ψ [C, N] the rows of the transposed maps, F [m, c], channel-major Q, K:
//   Q = √k·θ / max(‖θ‖, eps), K = √k·δ / max(‖δ‖, eps)                       (Eq. 3, per token)
//   a_Q = F Q − ‖Q‖²/2 [m, N],  s_Q = max over m (per token),  e_Q = exp(a_Q − s_Q)
//   a_K = (F K − ‖K‖²/2)ᵀ [N, m], s_K = max over all (per image), e_K = exp(a_K − s_K)
//   φ = e + ε·exp(−s)                                                       (Eq. 4, shifted)
//   ctx = ψ φ_K [C, m],  z = φ_Kᵀ 1 [m],  den = zᵀ φ_Q [N],  Y = (ctx φ_Q) / den  (Eqs. 5–6)
// Backward with Ȳ (and, for ENLCN's contrastive loss, the gradients of the token-major Q and K):
//   N̄ = Ȳ / den, d̄ = −colsum(Ȳ ⊙ Y) / den
//   φ̄_Q = ctxᵀ N̄ + z d̄ᵀ,  c̄tx = N̄ φ_Qᵀ,  z̄ = φ_Q d̄
//   φ̄_K = ψᵀ c̄tx + 1 z̄ᵀ,  ψ̄ = c̄tx φ_Kᵀ
//   ā = φ̄ ⊙ e,  Q̄ = Fᵀ ā_Q − colsum(ā_Q) ⊙ Q,  K̄ᵀ = ā_K F − rowsum(ā_K) ⊙ Kᵀ
//   θ̄ = (√k/n)·(Q̄ − Q̂ (Q̂·Q̄)) with Q̂ = θ/‖θ‖ (n = ‖θ‖ > eps), θ̄ = (√k/eps)·Q̄ where the norm is clamped.
#include <torch/extension.h>
#include <ATen/Parallel.h>

#include <algorithm>
#include <cmath>
#include <cstdint>
#include <limits>
#include <vector>

#include "blas.h"
#include "fast_exp.h"
#include "simd.h"
#include "transpose.h"

namespace {

namespace simd = enlcn_native::simd;
using enlcn_native::matmul_nn;
using enlcn_native::transpose;

// e[i] = exp(a[i] − s) for i < n (a and e may alias)
void exp_shifted(const float* a, int64_t n, float s, float* e) {
  int64_t i = 0;
  const simd::Vec vs = simd::set1(s);
  for (; i + simd::kLanes <= n; i += simd::kLanes) simd::store(e + i, simd::exp(simd::sub(simd::load(a + i), vs)));
  for (; i < n; ++i) e[i] = enlcn_native::exp_scalar(a[i] - s);
}

// Q = √k·θ / max(‖θ‖, eps) per column of θ [c, N]; norms[j] = ‖θ_j‖ (unclamped); sq[j] = ‖Q_j‖².
void normalise(const float* theta, int64_t c, int64_t N, float scale, float eps, float* q, float* norms,
               float* sq) {
  std::fill(norms, norms + N, 0.f);
  for (int64_t r = 0; r < c; ++r)
    for (int64_t j = 0; j < N; ++j) norms[j] += theta[r * N + j] * theta[r * N + j];
  std::vector<float> f(N);
  for (int64_t j = 0; j < N; ++j) {
    norms[j] = std::sqrt(norms[j]);
    f[j] = scale / std::max(norms[j], eps);
  }
  std::fill(sq, sq + N, 0.f);
  for (int64_t r = 0; r < c; ++r)
    for (int64_t j = 0; j < N; ++j) {
      const float v = theta[r * N + j] * f[j];
      q[r * N + j] = v;
      sq[j] += v * v;
    }
}

// θ̄ [c, N] from Q̄ [c, N] through Q = √k·θ / max(‖θ‖, eps) (see the header)
void normalise_backward(const float* theta, const float* gq, const float* norms, int64_t c, int64_t N,
                        float scale, float eps, float* gtheta) {
  std::vector<float> dot(N, 0.f), f(N), g(N);
  for (int64_t r = 0; r < c; ++r)
    for (int64_t j = 0; j < N; ++j) dot[j] += theta[r * N + j] * gq[r * N + j];
  for (int64_t j = 0; j < N; ++j) {
    const float n = norms[j];
    const bool clamped = !(n > eps);
    const float d = clamped ? eps : n;
    f[j] = scale / d;
    g[j] = clamped ? 0.f : scale * dot[j] / (d * d * n);  // √k (θ·Q̄) / (n² ‖θ‖)
  }
  for (int64_t r = 0; r < c; ++r)
    for (int64_t j = 0; j < N; ++j) gtheta[r * N + j] = f[j] * gq[r * N + j] - g[j] * theta[r * N + j];
}

struct Dims {
  int64_t B, c, C, N, m;
};

Dims check(const torch::Tensor& maps, const torch::Tensor& proj) {
  TORCH_CHECK(maps.device().is_cpu() && maps.scalar_type() == at::kFloat && maps.is_contiguous() &&
                  maps.dim() == 3,
              "enla_train: maps must be a contiguous float32 CPU tensor [B, N, 2c + C]");
  TORCH_CHECK(proj.device().is_cpu() && proj.scalar_type() == at::kFloat && proj.is_contiguous() &&
                  proj.dim() == 2,
              "enla_train: projection must be a contiguous float32 CPU tensor [m, c]");
  const int64_t c = proj.size(1), C = maps.size(2) - 2 * c;
  TORCH_CHECK(C >= 1, "enla_train: maps have ", maps.size(2), " channels, fewer than 2c + 1 with c = ", c);
  return {maps.size(0), c, C, maps.size(1), proj.size(0)};
}

// Forward. Returns Y [B, N, C] (token-major) and what the backward needs: Q, K [B, c, N] (channel-major), the norms of θ
// and δ [B, 2, N], e_Q [B, m, N], e_Kᵀ [B, N, m], s_Q [B, N], s_K [B], ctx [B, C, m], z [B, m], den [B, N].
std::vector<torch::Tensor> enla_train_forward(const torch::Tensor& maps, const torch::Tensor& proj, double sqrt_k,
                                              double norm_eps, double feature_eps) {
  const Dims d = check(maps, proj);
  const auto opt = maps.options();
  auto y = torch::empty({d.B, d.N, d.C}, opt), q = torch::empty({d.B, d.c, d.N}, opt);
  auto k = torch::empty({d.B, d.c, d.N}, opt), norms = torch::empty({d.B, 2, d.N}, opt);
  auto e_q = torch::empty({d.B, d.m, d.N}, opt), e_k = torch::empty({d.B, d.N, d.m}, opt);
  auto s_q = torch::empty({d.B, d.N}, opt), s_k = torch::empty({d.B}, opt);
  auto ctx = torch::empty({d.B, d.C, d.m}, opt), z = torch::empty({d.B, d.m}, opt);
  auto den = torch::empty({d.B, d.N}, opt);
  const float scale = (float)sqrt_k, neps = (float)norm_eps, feps = (float)feature_eps;
  const bool bg = enlcn_native::brgemm_usable();
  std::vector<float> f_t(d.c * d.m);  // Fᵀ [c, m]
  transpose(proj.data_ptr<float>(), d.m, d.c, d.c, f_t.data(), d.m);
  at::parallel_for(0, d.B, 1, [&](int64_t b0, int64_t b1) {
    const int64_t L = 2 * d.c + d.C;
    std::vector<float> sq(d.N), add_q(d.N), k_t(d.N * d.c), phi_q(d.m * d.N), phi_k(d.N * d.m);
    std::vector<float> cm(L * d.N), y_cm(d.C * d.N), inv_den(d.N);
    for (int64_t b = b0; b < b1; ++b) {
      transpose(maps.data_ptr<float>() + b * d.N * L, d.N, L, L, cm.data(), d.N);  // [N, L] → [L, N]
      const float *theta = cm.data(), *delta = theta + d.c * d.N, *psi = theta + 2 * d.c * d.N;
      float *Q = q.data_ptr<float>() + b * d.c * d.N, *K = k.data_ptr<float>() + b * d.c * d.N;
      float* nrm = norms.data_ptr<float>() + b * 2 * d.N;
      float *EQ = e_q.data_ptr<float>() + b * d.m * d.N, *EK = e_k.data_ptr<float>() + b * d.N * d.m;
      float *SQ = s_q.data_ptr<float>() + b * d.N, *CTX = ctx.data_ptr<float>() + b * d.C * d.m;
      float *Z = z.data_ptr<float>() + b * d.m, *DEN = den.data_ptr<float>() + b * d.N;
      float* Y = y_cm.data();
      // queries: a_Q = F Q − ‖Q‖²/2 [m, N], shifted per token
      normalise(theta, d.c, d.N, scale, neps, Q, nrm, sq.data());
      matmul_nn(bg, d.m, d.N, d.c, proj.data_ptr<float>(), d.c, Q, d.N, EQ, d.N);
      std::fill(SQ, SQ + d.N, -std::numeric_limits<float>::infinity());
      for (int64_t i = 0; i < d.m; ++i)
        for (int64_t j = 0; j < d.N; ++j) SQ[j] = std::max(SQ[j], EQ[i * d.N + j] -= 0.5f * sq[j]);
      for (int64_t j = 0; j < d.N; ++j) add_q[j] = feps * std::exp(-SQ[j]);
      for (int64_t i = 0; i < d.m; ++i) {
        float* row = EQ + i * d.N;
        for (int64_t j = 0; j < d.N; ++j) row[j] -= SQ[j];
        exp_shifted(row, d.N, 0.f, row);
        for (int64_t j = 0; j < d.N; ++j) phi_q[i * d.N + j] = row[j] + add_q[j];
      }
      // keys, token-major: a_Kᵀ = Kᵀ Fᵀ − ‖K‖²/2 [N, m], one shift per image
      normalise(delta, d.c, d.N, scale, neps, K, nrm + d.N, sq.data());
      transpose(K, d.c, d.N, d.N, k_t.data(), d.c);
      matmul_nn(bg, d.N, d.m, d.c, k_t.data(), d.c, f_t.data(), d.m, EK, d.m);
      float smax = -std::numeric_limits<float>::infinity();
      for (int64_t j = 0; j < d.N; ++j)
        for (int64_t i = 0; i < d.m; ++i) smax = std::max(smax, EK[j * d.m + i] -= 0.5f * sq[j]);
      s_k.data_ptr<float>()[b] = smax;
      exp_shifted(EK, d.N * d.m, smax, EK);
      const float add_k = feps * std::exp(-smax);
      std::fill(Z, Z + d.m, 0.f);
      for (int64_t j = 0; j < d.N; ++j)
        for (int64_t i = 0; i < d.m; ++i) Z[i] += (phi_k[j * d.m + i] = EK[j * d.m + i] + add_k);
      // ctx = ψ φ_K [C, m], Y = ctx φ_Q / (zᵀ φ_Q)
      matmul_nn(bg, d.C, d.m, d.N, psi, d.N, phi_k.data(), d.m, CTX, d.m);
      matmul_nn(bg, d.C, d.N, d.m, CTX, d.m, phi_q.data(), d.N, Y, d.N);
      std::fill(DEN, DEN + d.N, 0.f);
      for (int64_t i = 0; i < d.m; ++i)
        for (int64_t j = 0; j < d.N; ++j) DEN[j] += Z[i] * phi_q[i * d.N + j];
      for (int64_t j = 0; j < d.N; ++j) inv_den[j] = 1.f / DEN[j];
      for (int64_t ch = 0; ch < d.C; ++ch)
        for (int64_t j = 0; j < d.N; ++j) Y[ch * d.N + j] *= inv_den[j];
      transpose(Y, d.C, d.N, d.N, y.data_ptr<float>() + b * d.N * d.C, d.C);  // token-major out [N, C]
    }
    if (bg) at::native::cpublas::brgemm_release(false);
  });
  return {y, q, k, norms, e_q, e_k, s_q, s_k, ctx, z, den};
}

// Backward: the gradient of the maps [B, N, 2c + C] from Ȳ [B, N, C] (both token-major) and (defined or
// not) the gradients of the token-major Q and K [B, N, c] that ENLCN's contrastive loss used.
torch::Tensor enla_train_backward(const torch::Tensor& maps, const torch::Tensor& proj, double sqrt_k,
                                  double norm_eps, double feature_eps, const std::vector<torch::Tensor>& saved,
                                  const torch::Tensor& grad_y, const c10::optional<torch::Tensor>& grad_q_tokens,
                                  const c10::optional<torch::Tensor>& grad_k_tokens) {
  const Dims d = check(maps, proj);
  TORCH_CHECK(saved.size() == 11, "enla_train_backward: expected the 11 tensors enla_train_forward returned");
  TORCH_CHECK(grad_y.is_contiguous() && grad_y.scalar_type() == at::kFloat && grad_y.numel() == d.B * d.C * d.N,
              "enla_train_backward: grad_y must be contiguous float32 [B, N, C]");
  for (const auto* g : {&grad_q_tokens, &grad_k_tokens})
    TORCH_CHECK(!g->has_value() || ((*g)->is_contiguous() && (*g)->scalar_type() == at::kFloat &&
                                    (*g)->numel() == d.B * d.N * d.c),
                "enla_train_backward: token gradients must be contiguous float32 [B, N, c]");
  const auto &y = saved[0], &q = saved[1], &k = saved[2], &norms = saved[3], &e_q = saved[4], &e_k = saved[5];
  const auto &s_q = saved[6], &s_k = saved[7], &ctx = saved[8], &z = saved[9], &den = saved[10];
  auto grad_maps = torch::empty_like(maps);
  const float scale = (float)sqrt_k, neps = (float)norm_eps, feps = (float)feature_eps;
  const bool bg = enlcn_native::brgemm_usable();
  const float* gq_tok = grad_q_tokens.has_value() ? grad_q_tokens->data_ptr<float>() : nullptr;
  const float* gk_tok = grad_k_tokens.has_value() ? grad_k_tokens->data_ptr<float>() : nullptr;
  std::vector<float> f_t(d.c * d.m);  // Fᵀ [c, m]
  transpose(proj.data_ptr<float>(), d.m, d.c, d.c, f_t.data(), d.m);
  at::parallel_for(0, d.B, 1, [&](int64_t b0, int64_t b1) {
    std::vector<float> nbar(d.C * d.N), dbar(d.N), ctx_t(d.m * d.C), phi_q(d.m * d.N), phi_q_t(d.N * d.m);
    std::vector<float> gphi_q(d.m * d.N), gctx(d.C * d.m), gz(d.m), gphi_k(d.N * d.m);
    std::vector<float> phi_k_t(d.m * d.N), gq(d.c * d.N), gk_t(d.N * d.c), gk(d.c * d.N), k_t(d.N * d.c);
    const int64_t L = 2 * d.c + d.C;
    std::vector<float> colsum(d.N), cm(2 * d.c * d.N), g_cm(L * d.N);
    for (int64_t b = b0; b < b1; ++b) {
      const float* mt = maps.data_ptr<float>() + b * d.N * L;  // token-major [N, L]
      transpose(mt, d.N, 2 * d.c, L, cm.data(), d.N);  // θ, δ channel-major [2c, N]
      const float *theta = cm.data(), *delta = theta + d.c * d.N;
      const float* psi_t = mt + 2 * d.c;  // ψᵀ [N, C], row stride L
      const float *Y = y.data_ptr<float>() + b * d.N * d.C, *GY = grad_y.data_ptr<float>() + b * d.N * d.C;
      const float *Q = q.data_ptr<float>() + b * d.c * d.N, *K = k.data_ptr<float>() + b * d.c * d.N;
      const float* nrm = norms.data_ptr<float>() + b * 2 * d.N;
      const float *EQ = e_q.data_ptr<float>() + b * d.m * d.N, *EK = e_k.data_ptr<float>() + b * d.N * d.m;
      const float *SQ = s_q.data_ptr<float>() + b * d.N, *CTX = ctx.data_ptr<float>() + b * d.C * d.m;
      const float *Z = z.data_ptr<float>() + b * d.m, *DEN = den.data_ptr<float>() + b * d.N;
      const float add_k = feps * std::exp(-s_k.data_ptr<float>()[b]);
      float* G = g_cm.data();  // channel-major [L, N]; transposed into grad_maps at the end
      // N̄ = Ȳ / den [C, N], d̄ = −colsum(Ȳ ⊙ Y) / den (Ȳ and Y token-major [N, C])
      for (int64_t j = 0; j < d.N; ++j) {
        float acc = 0.f;
        for (int64_t ch = 0; ch < d.C; ++ch) acc += GY[j * d.C + ch] * Y[j * d.C + ch];
        dbar[j] = -acc / DEN[j];
      }
      transpose(GY, d.N, d.C, d.C, nbar.data(), d.N);
      for (int64_t ch = 0; ch < d.C; ++ch)
        for (int64_t j = 0; j < d.N; ++j) nbar[ch * d.N + j] /= DEN[j];
      for (int64_t j = 0; j < d.N; ++j) colsum[j] = feps * std::exp(-SQ[j]);  // ε·exp(−s_Q) per token
      for (int64_t i = 0; i < d.m; ++i)
        for (int64_t j = 0; j < d.N; ++j) phi_q[i * d.N + j] = EQ[i * d.N + j] + colsum[j];
      // φ̄_Q = ctxᵀ N̄ + z d̄ᵀ [m, N]
      transpose(CTX, d.C, d.m, d.m, ctx_t.data(), d.C);
      matmul_nn(bg, d.m, d.N, d.C, ctx_t.data(), d.C, nbar.data(), d.N, gphi_q.data(), d.N);
      for (int64_t i = 0; i < d.m; ++i)
        for (int64_t j = 0; j < d.N; ++j) gphi_q[i * d.N + j] += Z[i] * dbar[j];
      // c̄tx = N̄ φ_Qᵀ [C, m], z̄ = φ_Q d̄ [m]
      transpose(phi_q.data(), d.m, d.N, d.N, phi_q_t.data(), d.m);
      matmul_nn(bg, d.C, d.m, d.N, nbar.data(), d.N, phi_q_t.data(), d.m, gctx.data(), d.m);
      for (int64_t i = 0; i < d.m; ++i) {
        float acc = 0.f;
        for (int64_t j = 0; j < d.N; ++j) acc += phi_q[i * d.N + j] * dbar[j];
        gz[i] = acc;
      }
      // φ̄_Kᵀ = ψᵀ c̄tx + 1 z̄ᵀ [N, m]; ψ̄ = c̄tx φ_Kᵀ [C, N] (rows 2c… of the maps' gradient)
      matmul_nn(bg, d.N, d.m, d.C, psi_t, L, gctx.data(), d.m, gphi_k.data(), d.m);
      for (int64_t j = 0; j < d.N; ++j)
        for (int64_t i = 0; i < d.m; ++i) gphi_k[j * d.m + i] += gz[i];
      transpose(EK, d.N, d.m, d.m, phi_k_t.data(), d.N);
      for (int64_t q = 0; q < d.m * d.N; ++q) phi_k_t[q] += add_k;
      matmul_nn(bg, d.C, d.N, d.m, gctx.data(), d.m, phi_k_t.data(), d.N, G + 2 * d.c * d.N, d.N);
      // Q̄ = Fᵀ ā_Q − colsum(ā_Q) ⊙ Q, ā_Q = φ̄_Q ⊙ e_Q (in place)
      std::fill(colsum.begin(), colsum.end(), 0.f);
      for (int64_t i = 0; i < d.m; ++i)
        for (int64_t j = 0; j < d.N; ++j) colsum[j] += (gphi_q[i * d.N + j] *= EQ[i * d.N + j]);
      matmul_nn(bg, d.c, d.N, d.m, f_t.data(), d.m, gphi_q.data(), d.N, gq.data(), d.N);
      for (int64_t r = 0; r < d.c; ++r)
        for (int64_t j = 0; j < d.N; ++j) {
          float v = gq[r * d.N + j] - colsum[j] * Q[r * d.N + j];
          if (gq_tok) v += gq_tok[(b * d.N + j) * d.c + r];
          gq[r * d.N + j] = v;
        }
      // K̄ᵀ = ā_K F − rowsum(ā_K) ⊙ Kᵀ [N, c], ā_K = φ̄_Kᵀ ⊙ e_Kᵀ (in place)
      for (int64_t j = 0; j < d.N; ++j) {
        float acc = 0.f;
        for (int64_t i = 0; i < d.m; ++i) acc += (gphi_k[j * d.m + i] *= EK[j * d.m + i]);
        colsum[j] = acc;
      }
      matmul_nn(bg, d.N, d.c, d.m, gphi_k.data(), d.m, proj.data_ptr<float>(), d.c, gk_t.data(), d.c);
      transpose(K, d.c, d.N, d.N, k_t.data(), d.c);
      for (int64_t j = 0; j < d.N; ++j)
        for (int64_t r = 0; r < d.c; ++r) {
          float v = gk_t[j * d.c + r] - colsum[j] * k_t[j * d.c + r];
          if (gk_tok) v += gk_tok[(b * d.N + j) * d.c + r];
          gk_t[j * d.c + r] = v;
        }
      transpose(gk_t.data(), d.N, d.c, d.c, gk.data(), d.N);
      // θ̄, δ̄ through the normalisation (rows 0…2c of the maps' gradient)
      normalise_backward(theta, gq.data(), nrm, d.c, d.N, scale, neps, G);
      normalise_backward(delta, gk.data(), nrm + d.N, d.c, d.N, scale, neps, G + d.c * d.N);
      transpose(G, L, d.N, d.N, grad_maps.data_ptr<float>() + b * d.N * L, L);  // [L, N] → [N, L]
    }
    if (bg) at::native::cpublas::brgemm_release(false);
  });
  return grad_maps;
}

}  // namespace

PYBIND11_MODULE(TORCH_EXTENSION_NAME, m) {
  m.def("isa", &enlcn_native::isa, "the instruction-set level it was compiled for: avx512, avx2 or generic");
  m.def("forward", &enla_train_forward, "ENLA after the embedding: Y and the tensors the backward needs");
  m.def("backward", &enla_train_backward, "the gradient of the embedding maps");
  m.def("uses_brgemm", &enlcn_native::brgemm_usable, "whether the products run on oneDNN's brgemm (else sgemm)");
  m.def("allow_brgemm", &enlcn_native::allow_brgemm, "allow (default) or forbid brgemm; forbidden, sgemm runs every product");
}
