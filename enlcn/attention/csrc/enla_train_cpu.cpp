// Native CPU kernel of the ENLA/ENLCA module's training step with 1×1 embeddings: Eq. 2's embedding, Eq. 3's
// normalisation, Eq. 4's shifted random features, Eqs. 5–6's aggregation and the residual
// out = x + res_scale·Y, forward and backward. The same algebra as enlcn/attention/enla_autograd.py
// (_FusedENLA) plus ENLCA.embed and the module's residual, so that none of the ~45 small PyTorch ops of that
// path (each a pass over [B, N, ·]) runs, nor the embedding's product, bias, copies and residual around it.
//
// Layout: x comes in NCHW (channel-major per image: [C, N]) or channels_last (token-major: [N, C]); out and
// x's gradient go out channels_last, as the Python path's output (a token-major Y plus x) does, so that the
// convolutions after the module run channels_last (at the AVX2 level EDSR's step is about 0.8× as long as
// NCHW). Inside, each image is channel-major (token-major images are transposed in and out; they are in
// cache: 48×1024 floats at the study's shapes) and one parallel region per direction does the work per image, every
// product on oneDNN's brgemm (blas.h; sgemm where brgemm is unusable) and the exp on our polynomial
// (fast_exp.h).
//
// Per image, with X [C, N], W [2c + C, C], b, F [m, c]:
//   [θ; δ; ψ] = W X + b  (θ, δ [c, N], ψ [C, N])                             (Eq. 2, 1×1 kernels)
//   Q = √k·θ / max(‖θ‖, eps), K = √k·δ / max(‖δ‖, eps)                       (Eq. 3, per token)
//   a_Q = F Q − ‖Q‖²/2 [m, N],  s_Q = max over m (per token),  e_Q = exp(a_Q − s_Q)
//   a_K = (F K − ‖K‖²/2)ᵀ [N, m], s_K = max over all (per image), e_K = exp(a_K − s_K)
//   φ = e + ε·exp(−s)                                                       (Eq. 4, shifted)
//   ctx = ψ φ_K [C, m],  z = φ_Kᵀ 1 [m],  den = zᵀ φ_Q [N],  Y = (ctx φ_Q) / den  (Eqs. 5–6)
//   out = X + res_scale·Y
// Backward with Ō (out's gradient) and, for ENLCN's contrastive loss, the gradients of the token-major Q and K:
//   Ȳ = res_scale·Ō,  N̄ = Ȳ / den, d̄ = −colsum(Ȳ ⊙ Y) / den
//   φ̄_Q = ctxᵀ N̄ + z d̄ᵀ,  c̄tx = N̄ φ_Qᵀ,  z̄ = φ_Q d̄
//   φ̄_K = ψᵀ c̄tx + 1 z̄ᵀ,  ψ̄ = c̄tx φ_Kᵀ
//   ā = φ̄ ⊙ e,  Q̄ = Fᵀ ā_Q − colsum(ā_Q) ⊙ Q,  K̄ᵀ = ā_K F − rowsum(ā_K) ⊙ Kᵀ
//   θ̄ = (√k/n)·(Q̄ − Q̂ (Q̂·Q̄)) with Q̂ = θ/‖θ‖ (n = ‖θ‖ > eps), θ̄ = (√k/eps)·Q̄ where the norm is clamped.
//   with G = [θ̄; δ̄; ψ̄] [L, N]:  W̄ = Σ_images G Xᵀ,  b̄ = Σ_images rowsum(G),  X̄ = Ō + Wᵀ G
#include "torch_ext.h"

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

// row[i] −= sub for i < n; returns the largest result (one vector of running maxima, then its lanes: the
// key shift's maximum over [N, m] is otherwise a serial chain of scalar max, measured 1/4 of the forward)
float subtract_max(float* row, int64_t n, float sub) {
  int64_t i = 0;
  const simd::Vec vs = simd::set1(sub);
  simd::Vec vmax = simd::set1(-std::numeric_limits<float>::infinity());
  for (; i + simd::kLanes <= n; i += simd::kLanes) {
    const simd::Vec v = simd::sub(simd::load(row + i), vs);
    simd::store(row + i, v);
    vmax = simd::max(vmax, v);
  }
  float smax = simd::reduce_max(vmax);
  for (; i < n; ++i) smax = std::max(smax, row[i] -= sub);
  return smax;
}

// Σ_i a[i]·b[i] for i < n, over kLanes partial sums: a scalar loop is one serial chain of dependent adds
float dot(const float* a, const float* b, int64_t n) {
  int64_t i = 0;
  simd::Vec acc = simd::zero();
  for (; i + simd::kLanes <= n; i += simd::kLanes) acc = simd::fmadd(simd::load(a + i), simd::load(b + i), acc);
  float sum = simd::reduce_add(acc);
  for (; i < n; ++i) sum += a[i] * b[i];
  return sum;
}

// Σ_i a[i] for i < n, over kLanes partial sums as dot (the backward's bias row sums were ~30 % of its own
// loops as a serial scalar chain, measured at AVX2)
float sum(const float* a, int64_t n) {
  int64_t i = 0;
  simd::Vec acc = simd::zero();
  for (; i + simd::kLanes <= n; i += simd::kLanes) acc = simd::add(acc, simd::load(a + i));
  float total = simd::reduce_add(acc);
  for (; i < n; ++i) total += a[i];
  return total;
}

// a[i] *= e[i] for i < n; returns Σ_i a[i] (the products), over kLanes partial sums as dot
float scale_sum(float* a, const float* e, int64_t n) {
  int64_t i = 0;
  simd::Vec acc = simd::zero();
  for (; i + simd::kLanes <= n; i += simd::kLanes) {
    const simd::Vec v = simd::mul(simd::load(a + i), simd::load(e + i));
    simd::store(a + i, v);
    acc = simd::add(acc, v);
  }
  float sum = simd::reduce_add(acc);
  for (; i < n; ++i) sum += (a[i] *= e[i]);
  return sum;
}

// a[r][j] += v[r] for r < rows, j < n (row stride n)
void add_per_row(float* a, int64_t rows, int64_t n, const float* v) {
  for (int64_t r = 0; r < rows; ++r)
    for (int64_t j = 0; j < n; ++j) a[r * n + j] += v[r];
}

struct Dims {
  int64_t B, c, C, N, m, L;  // L = 2c + C: the rows of the embedding [θ; δ; ψ]
};

// x [B, C, H, W] (contiguous, or channels_last when token_major), the stacked 1×1 embedding W [L, C] and
// bias [L], F [m, c]
Dims check(const at::Tensor& x, const at::Tensor& weight, const at::Tensor& bias, const at::Tensor& proj,
           bool token_major) {
  const auto fmt = token_major ? at::MemoryFormat::ChannelsLast : at::MemoryFormat::Contiguous;
  TORCH_CHECK(x.device().is_cpu() && x.scalar_type() == at::kFloat && x.dim() == 4 && x.is_contiguous(fmt),
              "enla_train: x must be a float32 CPU tensor [B, C, H, W], contiguous in the layout given");
  for (const auto* t : {&weight, &bias, &proj})
    TORCH_CHECK(t->device().is_cpu() && t->scalar_type() == at::kFloat && t->is_contiguous(),
                "enla_train: weight, bias and projection must be contiguous float32 CPU tensors");
  const int64_t C = x.size(1), c = proj.size(1), L = 2 * c + C;
  TORCH_CHECK(proj.dim() == 2 && weight.dim() == 2 && weight.size(0) == L && weight.size(1) == C &&
                  bias.numel() == L,
              "enla_train: expected weight [2c + C, C] = [", L, ", ", C, "] and bias [", L, "], got ",
              weight.sizes(), " and ", bias.sizes());
  return {x.size(0), c, C, x.size(2) * x.size(3), proj.size(0), L};
}

// Forward: out = x + res_scale·Y (channels_last), and what the backward needs: the maps [θ; δ; ψ] [B, L, N]
// and Y [B, C, N] (channel-major), Q, K [B, c, N], the norms of θ and δ [B, 2, N], e_Q [B, m, N], e_Kᵀ
// [B, N, m], s_Q [B, N], s_K [B], ctx [B, C, m], z [B, m], den [B, N].
std::vector<at::Tensor> enla_train_forward(const at::Tensor& x, const at::Tensor& weight,
                                              const at::Tensor& bias, const at::Tensor& proj, double sqrt_k,
                                              double norm_eps, double feature_eps, double res_scale,
                                              bool token_major) {
  const Dims d = check(x, weight, bias, proj, token_major);
  const auto opt = x.options();
  auto out = at::empty_like(x, at::MemoryFormat::ChannelsLast), maps = at::empty({d.B, d.L, d.N}, opt), y = at::empty({d.B, d.C, d.N}, opt);
  auto q = at::empty({d.B, d.c, d.N}, opt), k = at::empty({d.B, d.c, d.N}, opt);
  auto norms = at::empty({d.B, 2, d.N}, opt);
  auto e_q = at::empty({d.B, d.m, d.N}, opt), e_k = at::empty({d.B, d.N, d.m}, opt);
  auto s_q = at::empty({d.B, d.N}, opt), s_k = at::empty({d.B}, opt);
  auto ctx = at::empty({d.B, d.C, d.m}, opt), z = at::empty({d.B, d.m}, opt);
  auto den = at::empty({d.B, d.N}, opt);
  const float scale = (float)sqrt_k, neps = (float)norm_eps, feps = (float)feature_eps, rs = (float)res_scale;
  const bool bg = enlcn_native::brgemm_usable();
  std::vector<float> f_t(d.c * d.m);  // Fᵀ [c, m]
  transpose(proj.data_ptr<float>(), d.m, d.c, d.c, f_t.data(), d.m);
  at::parallel_for(0, d.B, 1, [&](int64_t b0, int64_t b1) {
    std::vector<float> sq(d.N), add_q(d.N), k_t(d.N * d.c), phi_q(d.m * d.N), phi_k(d.N * d.m);
    std::vector<float> x_cm(token_major ? d.C * d.N : 0), o_cm(d.C * d.N), inv_den(d.N);
    for (int64_t b = b0; b < b1; ++b) {
      const float* X = x.data_ptr<float>() + b * d.C * d.N;  // [C, N], or [N, C] when token_major
      if (token_major) transpose(X, d.N, d.C, d.C, x_cm.data(), d.N);
      const float* Xc = token_major ? x_cm.data() : X;  // channel-major [C, N]
      // [θ; δ; ψ] = W X + b [L, N] (Eq. 2 with 1×1 kernels)
      float* cm = maps.data_ptr<float>() + b * d.L * d.N;
      matmul_nn(bg, d.L, d.N, d.C, weight.data_ptr<float>(), d.C, Xc, d.N, cm, d.N);
      add_per_row(cm, d.L, d.N, bias.data_ptr<float>());
      const float *theta = cm, *delta = theta + d.c * d.N, *psi = theta + 2 * d.c * d.N;
      float *Q = q.data_ptr<float>() + b * d.c * d.N, *K = k.data_ptr<float>() + b * d.c * d.N;
      float* nrm = norms.data_ptr<float>() + b * 2 * d.N;
      float *EQ = e_q.data_ptr<float>() + b * d.m * d.N, *EK = e_k.data_ptr<float>() + b * d.N * d.m;
      float *SQ = s_q.data_ptr<float>() + b * d.N, *CTX = ctx.data_ptr<float>() + b * d.C * d.m;
      float *Z = z.data_ptr<float>() + b * d.m, *DEN = den.data_ptr<float>() + b * d.N;
      float* Y = y.data_ptr<float>() + b * d.C * d.N;
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
      for (int64_t j = 0; j < d.N; ++j) smax = std::max(smax, subtract_max(EK + j * d.m, d.m, 0.5f * sq[j]));
      s_k.data_ptr<float>()[b] = smax;
      exp_shifted(EK, d.N * d.m, smax, EK);
      const float add_k = feps * std::exp(-smax);
      std::fill(Z, Z + d.m, 0.f);
      for (int64_t j = 0; j < d.N; ++j)
        for (int64_t i = 0; i < d.m; ++i) Z[i] += (phi_k[j * d.m + i] = EK[j * d.m + i] + add_k);
      // ctx = ψ φ_K [C, m], Y = ctx φ_Q / (zᵀ φ_Q) [C, N]
      matmul_nn(bg, d.C, d.m, d.N, psi, d.N, phi_k.data(), d.m, CTX, d.m);
      matmul_nn(bg, d.C, d.N, d.m, CTX, d.m, phi_q.data(), d.N, Y, d.N);
      std::fill(DEN, DEN + d.N, 0.f);
      for (int64_t i = 0; i < d.m; ++i)
        for (int64_t j = 0; j < d.N; ++j) DEN[j] += Z[i] * phi_q[i * d.N + j];
      for (int64_t j = 0; j < d.N; ++j) inv_den[j] = 1.f / DEN[j];
      for (int64_t ch = 0; ch < d.C; ++ch)
        for (int64_t j = 0; j < d.N; ++j) Y[ch * d.N + j] *= inv_den[j];
      // out = x + res_scale·Y, token-major [N, C]
      for (int64_t i = 0; i < d.C * d.N; ++i) o_cm[i] = Xc[i] + rs * Y[i];
      transpose(o_cm.data(), d.C, d.N, d.N, out.data_ptr<float>() + b * d.N * d.C, d.C);
    }
    if (bg) at::native::cpublas::brgemm_release(false);
  });
  return {out, maps, y, q, k, norms, e_q, e_k, s_q, s_k, ctx, z, den};
}

// Backward: from the gradient of out (channels_last) and (defined or not) the gradients of the token-major Q
// and K [B, N, c] that ENLCN's contrastive loss used: the gradient of x (channels_last), and per image the
// gradients of W [B, L, C] and of the bias [B, L] (the caller sums them over the batch).
std::vector<at::Tensor> enla_train_backward(const at::Tensor& x, const at::Tensor& weight,
                                               const at::Tensor& bias, const at::Tensor& proj, double sqrt_k,
                                               double norm_eps, double feature_eps, double res_scale,
                                               bool token_major, const std::vector<at::Tensor>& saved,
                                               const at::Tensor& grad_out,
                                               const c10::optional<at::Tensor>& grad_q_tokens,
                                               const c10::optional<at::Tensor>& grad_k_tokens) {
  const Dims d = check(x, weight, bias, proj, token_major);
  TORCH_CHECK(saved.size() == 12, "enla_train_backward: expected the 12 tensors enla_train_forward saved");
  TORCH_CHECK(grad_out.is_contiguous(at::MemoryFormat::ChannelsLast) && grad_out.scalar_type() == at::kFloat &&
                  grad_out.sizes() == x.sizes(),
              "enla_train_backward: grad_out must be float32 like x, channels_last");
  for (const auto* g : {&grad_q_tokens, &grad_k_tokens})
    TORCH_CHECK(!g->has_value() || ((*g)->is_contiguous() && (*g)->scalar_type() == at::kFloat &&
                                    (*g)->numel() == d.B * d.N * d.c),
                "enla_train_backward: token gradients must be contiguous float32 [B, N, c]");
  const auto &maps = saved[0], &y = saved[1], &q = saved[2], &k = saved[3], &norms = saved[4], &e_q = saved[5];
  const auto &e_k = saved[6], &s_q = saved[7], &s_k = saved[8], &ctx = saved[9], &z = saved[10], &den = saved[11];
  const auto opt = x.options();
  auto grad_x = at::empty_like(x, at::MemoryFormat::ChannelsLast), grad_w = at::empty({d.B, d.L, d.C}, opt);
  auto grad_b = at::empty({d.B, d.L}, opt);
  const float scale = (float)sqrt_k, neps = (float)norm_eps, feps = (float)feature_eps, rs = (float)res_scale;
  const bool bg = enlcn_native::brgemm_usable();
  const float* gq_tok = grad_q_tokens.has_value() ? grad_q_tokens->data_ptr<float>() : nullptr;
  const float* gk_tok = grad_k_tokens.has_value() ? grad_k_tokens->data_ptr<float>() : nullptr;
  std::vector<float> f_t(d.c * d.m);  // Fᵀ [c, m]
  transpose(proj.data_ptr<float>(), d.m, d.c, d.c, f_t.data(), d.m);
  at::parallel_for(0, d.B, 1, [&](int64_t b0, int64_t b1) {
    std::vector<float> nbar(d.C * d.N), dbar(d.N), ctx_t(d.m * d.C), phi_q(d.m * d.N), phi_q_t(d.N * d.m);
    std::vector<float> gphi_q(d.m * d.N), gctx(d.C * d.m), gz(d.m), gphi_k(d.N * d.m);
    std::vector<float> phi_k_t(d.m * d.N), gq(d.c * d.N), gk_t(d.N * d.c), gk(d.c * d.N), k_t(d.N * d.c);
    std::vector<float> colsum(d.N), psi_t(d.N * d.C), g_cm(d.L * d.N), inv_den(d.N);
    std::vector<float> go_cm(d.C * d.N), x_t(token_major ? 0 : d.N * d.C), g_t(d.N * d.L);
    for (int64_t b = b0; b < b1; ++b) {
      const float* X = x.data_ptr<float>() + b * d.C * d.N;  // [C, N], or [N, C] when token_major
      const float* GO = grad_out.data_ptr<float>() + b * d.N * d.C;  // token-major [N, C]
      transpose(GO, d.N, d.C, d.C, go_cm.data(), d.N);
      const float* GOc = go_cm.data();  // channel-major [C, N]
      const float* cm = maps.data_ptr<float>() + b * d.L * d.N;  // [θ; δ; ψ] [L, N]
      const float *theta = cm, *delta = theta + d.c * d.N, *psi = theta + 2 * d.c * d.N;
      const float* Y = y.data_ptr<float>() + b * d.C * d.N;
      const float *Q = q.data_ptr<float>() + b * d.c * d.N, *K = k.data_ptr<float>() + b * d.c * d.N;
      const float* nrm = norms.data_ptr<float>() + b * 2 * d.N;
      const float *EQ = e_q.data_ptr<float>() + b * d.m * d.N, *EK = e_k.data_ptr<float>() + b * d.N * d.m;
      const float *SQ = s_q.data_ptr<float>() + b * d.N, *CTX = ctx.data_ptr<float>() + b * d.C * d.m;
      const float *Z = z.data_ptr<float>() + b * d.m, *DEN = den.data_ptr<float>() + b * d.N;
      const float add_k = feps * std::exp(-s_k.data_ptr<float>()[b]);
      float* G = g_cm.data();  // the maps' gradient, channel-major [L, N]
      // Ȳ = res_scale·(out's gradient); N̄ = Ȳ / den [C, N], d̄ = −colsum(Ȳ ⊙ Y) / den
      for (int64_t j = 0; j < d.N; ++j) {
        inv_den[j] = rs / DEN[j];
        dbar[j] = 0.f;
      }
      for (int64_t ch = 0; ch < d.C; ++ch)
        for (int64_t j = 0; j < d.N; ++j) {
          dbar[j] += GOc[ch * d.N + j] * Y[ch * d.N + j];
          nbar[ch * d.N + j] = GOc[ch * d.N + j] * inv_den[j];
        }
      for (int64_t j = 0; j < d.N; ++j) dbar[j] *= -inv_den[j];
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
      for (int64_t i = 0; i < d.m; ++i) gz[i] = dot(phi_q.data() + i * d.N, dbar.data(), d.N);
      // φ̄_Kᵀ = ψᵀ c̄tx + 1 z̄ᵀ [N, m]; ψ̄ = c̄tx φ_Kᵀ [C, N] (rows 2c… of G)
      transpose(psi, d.C, d.N, d.N, psi_t.data(), d.C);
      matmul_nn(bg, d.N, d.m, d.C, psi_t.data(), d.C, gctx.data(), d.m, gphi_k.data(), d.m);
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
      for (int64_t j = 0; j < d.N; ++j) colsum[j] = scale_sum(gphi_k.data() + j * d.m, EK + j * d.m, d.m);
      matmul_nn(bg, d.N, d.c, d.m, gphi_k.data(), d.m, proj.data_ptr<float>(), d.c, gk_t.data(), d.c);
      transpose(K, d.c, d.N, d.N, k_t.data(), d.c);
      for (int64_t j = 0; j < d.N; ++j)
        for (int64_t r = 0; r < d.c; ++r) {
          float v = gk_t[j * d.c + r] - colsum[j] * k_t[j * d.c + r];
          if (gk_tok) v += gk_tok[(b * d.N + j) * d.c + r];
          gk_t[j * d.c + r] = v;
        }
      transpose(gk_t.data(), d.N, d.c, d.c, gk.data(), d.N);
      // θ̄, δ̄ through the normalisation (rows 0…2c of G)
      normalise_backward(theta, gq.data(), nrm, d.c, d.N, scale, neps, G);
      normalise_backward(delta, gk.data(), nrm + d.N, d.c, d.N, scale, neps, G + d.c * d.N);
      // through [θ; δ; ψ] = W X + b: W̄ = G Xᵀ [L, C], b̄ = rowsum(G), X̄ = out's gradient + Wᵀ G
      float* GX = grad_x.data_ptr<float>() + b * d.C * d.N;
      float* GB = grad_b.data_ptr<float>() + b * d.L;
      for (int64_t r = 0; r < d.L; ++r) GB[r] = sum(G + r * d.N, d.N);
      if (!token_major) transpose(X, d.C, d.N, d.N, x_t.data(), d.C);
      const float* Xt = token_major ? X : x_t.data();  // token-major [N, C]
      matmul_nn(bg, d.L, d.C, d.N, G, d.N, Xt, d.C, grad_w.data_ptr<float>() + b * d.L * d.C, d.C);
      std::copy(GO, GO + d.C * d.N, GX);  // X̄ᵀ [N, C] = Ōᵀ + Gᵀ W
      transpose(G, d.L, d.N, d.N, g_t.data(), d.L);
      matmul_nn(bg, d.N, d.C, d.L, g_t.data(), d.L, weight.data_ptr<float>(), d.C, GX, d.C, true);
    }
    if (bg) at::native::cpublas::brgemm_release(false);
  });
  return {grad_x, grad_w, grad_b};
}

}  // namespace

PYBIND11_MODULE(TORCH_EXTENSION_NAME, m) {
  m.def("isa", &enlcn_native::isa, "the instruction-set level it was compiled for: avx512, avx2 or generic");
  m.def("forward", &enla_train_forward, "the ENLA module from x: out = x + res_scale·Y and the tensors the backward needs");
  m.def("backward", &enla_train_backward, "the gradients of x, of W and of the bias (per image)");
  m.def("uses_brgemm", &enlcn_native::brgemm_usable, "whether the products run on oneDNN's brgemm (else sgemm)");
  m.def("allow_brgemm", &enlcn_native::allow_brgemm, "allow (default) or forbid brgemm; forbidden, sgemm runs every product");
}
