// Native CPU kernel of exact softmax attention over windows of chunks, forward and backward (training):
// NLA (paper Eq. 1; one chunk holding all N tokens, one window) and NLSA's chunked attention (each chunk of
// a hash round attends to itself, the previous and the next chunk). Same arithmetic as
// enlcn/attention/blocked.py (_BlockedAttention, _WindowAttention), in one parallel region per call.
//
// Why: at the study's shapes the Python blocked paths spend half their time outside the products — the
// softmax (three passes of torch's exp), the lse, and the dispatch of ~10 small ops per block — and their
// narrow products (inner or outer dimension c = 12 or 24) write score blocks that are read back from
// memory. Here each block of query rows makes its scores, softmax (our polynomial exp, fast_exp.h) and
// output while they sit in the L2 cache, and the backward pass recomputes them the same way (as
// FlashAttention does; a block holds whole rows, so no online softmax is needed).
//
// Layout: q, k [G, K, S, d], v [G, K, S, dv]; chunk i of group g attends to the window of chunks
// j_w = (i + offsets[w]) mod K of the same group, W = |offsets|, whose keys and values stacked are K_w
// [W·S, d] and V_w [W·S, dv]. Per block of `rb` query rows Q_r of chunk i:
//   forward:  T = Q_r K_wᵀ                       [rb, W·S]
//             P = softmax_rows(T), lse = max + log Σ exp(T − max)
//             O_r = P V_w                         [rb, dv]
//   backward (δ = rowsum(dO ⊙ O) − dlse, P recomputed):
//             dV_wᵀ += dO_rᵀ P                    [dv, W·S]
//             dS = P ⊙ (dO_r V_wᵀ − δ)
//             dQ_rᵀ = K_wᵀ dSᵀ                    [d, rb]
//             dK_wᵀ += Q_rᵀ dS                    [d, W·S]
//   and each chunk's share of dK_wᵀ, dV_wᵀ is added to its own gradient.
// Every product is an untransposed row-major C = A·B on oneDNN's brgemm ukernel (blas.h; the operands it
// needs transposed — K_wᵀ, V_wᵀ, dO_rᵀ, Q_rᵀ, a few KB each — are copied per window or block). At these
// shapes brgemm ran 2–3× faster than MKL's sgemm on this AMD EPYC (one core, e.g. P V_w [144×432]·[432×48]
// 24 vs 64 µs); where brgemm is unusable the same products run on sgemm. The gradients of K and V are
// accumulated transposed ([d, K·S], [dv, K·S] per group: the wide orientation) and transposed back once
// per group. Groups are independent, so threads own whole groups and no two threads write the same gradient.
#include "torch_ext.h"

#include <algorithm>
#include <chrono>
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

// Each row r < rows of a (row stride ld, width w) becomes softmax(a[r]); lse[r] = max + log Σ exp(a − max).
void softmax_rows(float* a, int64_t rows, int64_t w, int64_t ld, float* lse) {
  for (int64_t r = 0; r < rows; ++r) {
    float* row = a + r * ld;
    float mx = -std::numeric_limits<float>::infinity();
    int64_t u = 0;
    simd::Vec vmax = simd::set1(mx);
    for (; u + simd::kLanes <= w; u += simd::kLanes) vmax = simd::max(vmax, simd::load(row + u));
    mx = simd::reduce_max(vmax);
    for (; u < w; ++u) mx = std::max(mx, row[u]);
    float total = 0.f;
    u = 0;
    const simd::Vec vm = simd::set1(mx);
    simd::Vec acc = simd::zero();
    for (; u + simd::kLanes <= w; u += simd::kLanes) {
      const simd::Vec e = simd::exp(simd::sub(simd::load(row + u), vm));
      simd::store(row + u, e);
      acc = simd::add(acc, e);
    }
    total = simd::reduce_add(acc);
    for (; u < w; ++u) total += (row[u] = enlcn_native::exp_scalar(row[u] - mx));
    const float inv = 1.f / total;
    for (u = 0; u < w; ++u) row[u] *= inv;
    if (lse) lse[r] = mx + std::log(total);
  }
}

struct Shapes {
  int64_t G, K, S, d, dv, W, rb;
  int64_t ws() const { return W * S; }  // keys in a window
  int64_t rows_max() const { return std::min(rb, S); }
};

Shapes check(const at::Tensor& q, const at::Tensor& k, const at::Tensor& v,
             const std::vector<int64_t>& offsets, int64_t rb) {
  for (const auto* t : {&q, &k, &v}) {
    TORCH_CHECK(t->device().is_cpu() && t->scalar_type() == at::kFloat && t->is_contiguous() && t->dim() == 4,
                "window attention: q, k, v must be contiguous float32 CPU tensors [G, K, S, ·]");
  }
  TORCH_CHECK(k.sizes() == q.sizes() && v.sizes().slice(0, 3) == q.sizes().slice(0, 3),
              "window attention: q, k [G, K, S, d] and v [G, K, S, dv] must agree");
  TORCH_CHECK(!offsets.empty() && rb >= 1, "window attention: need ≥ 1 window offset and ≥ 1 row per block");
  return {q.size(0), q.size(1), q.size(2), q.size(3), v.size(3), (int64_t)offsets.size(), rb};
}

// chunk index of window w of chunk i
inline int64_t window_chunk(int64_t i, int64_t offset, int64_t K) { return ((i + offset) % K + K) % K; }

// One thread's copies of a window's operands: K_w [ws, d] and V_w [ws, dv] stacked (pointers into the
// group when the window is one chunk), K_wᵀ [d, ws] and V_wᵀ [dv, ws] (backward only).
struct Window {
  std::vector<float> k_buf, v_buf, k_t, v_t;
  const float* k = nullptr;
  const float* v = nullptr;

  Window(const Shapes& s, bool backward)
      : k_buf(s.W > 1 ? s.ws() * s.d : 0), v_buf(s.W > 1 ? s.ws() * s.dv : 0), k_t(s.d * s.ws()),
        v_t(backward ? s.dv * s.ws() : 0) {}

  void load(const Shapes& s, const float* kg, const float* vg, const std::vector<int64_t>& offsets, int64_t i) {
    const int64_t chunk_q = s.S * s.d, chunk_v = s.S * s.dv, ws = s.ws();
    if (s.W == 1) {
      const int64_t j = window_chunk(i, offsets[0], s.K);
      k = kg + j * chunk_q, v = vg + j * chunk_v;
    } else {
      for (int64_t w = 0; w < s.W; ++w) {
        const int64_t j = window_chunk(i, offsets[w], s.K);
        std::copy(kg + j * chunk_q, kg + (j + 1) * chunk_q, k_buf.data() + w * chunk_q);
        std::copy(vg + j * chunk_v, vg + (j + 1) * chunk_v, v_buf.data() + w * chunk_v);
      }
      k = k_buf.data(), v = v_buf.data();
    }
    transpose(k, ws, s.d, s.d, k_t.data(), ws);
    if (!v_t.empty()) transpose(v, ws, s.dv, s.dv, v_t.data(), ws);
  }
};

// P = softmax_rows(Q_r K_wᵀ) ([rows, W·S]); lse of the rows if given.
void scores_softmax(bool bg, const Shapes& s, const float* q_r, const Window& win, int64_t rows, float* p,
                    float* lse) {
  const int64_t ws = s.ws();
  matmul_nn(bg, rows, ws, s.d, q_r, s.d, win.k_t.data(), ws, p, ws);
  softmax_rows(p, rows, ws, ws, lse);
}

// dst[:, j·S : (j+1)·S] += src[:, w·S : (w+1)·S] for each window w (chunk j), rows of length K·S and W·S.
void scatter_window(const Shapes& s, const std::vector<int64_t>& offsets, int64_t i, const float* src,
                    int64_t channels, float* dst) {
  const int64_t ws = s.ws(), ks = s.K * s.S;
  for (int64_t w = 0; w < s.W; ++w) {
    const int64_t j = window_chunk(i, offsets[w], s.K);
    for (int64_t ch = 0; ch < channels; ++ch) {
      const float* a = src + ch * ws + w * s.S;
      float* b = dst + ch * ks + j * s.S;
      for (int64_t u = 0; u < s.S; ++u) b[u] += a[u];
    }
  }
}

std::vector<at::Tensor> window_forward(const at::Tensor& q, const at::Tensor& k, const at::Tensor& v,
                                          const std::vector<int64_t>& offsets, int64_t rb) {
  const Shapes s = check(q, k, v, offsets, rb);
  auto out = at::empty({s.G, s.K, s.S, s.dv}, q.options());
  auto lse = at::empty({s.G, s.K, s.S}, q.options());
  const float *Q = q.data_ptr<float>(), *Kp = k.data_ptr<float>(), *V = v.data_ptr<float>();
  float *O = out.data_ptr<float>(), *L = lse.data_ptr<float>();
  const int64_t ws = s.ws(), chunk_q = s.S * s.d, chunk_v = s.S * s.dv;
  const bool bg = enlcn_native::brgemm_usable();
  at::parallel_for(0, s.G, 1, [&](int64_t g0, int64_t g1) {
    std::vector<float> p(s.rows_max() * ws);
    Window win(s, false);
    for (int64_t g = g0; g < g1; ++g) {
      const float *qg = Q + g * s.K * chunk_q, *kg = Kp + g * s.K * chunk_q, *vg = V + g * s.K * chunk_v;
      for (int64_t i = 0; i < s.K; ++i) {
        win.load(s, kg, vg, offsets, i);
        for (int64_t r0 = 0; r0 < s.S; r0 += rb) {
          const int64_t rows = std::min(rb, s.S - r0), first = (g * s.K + i) * s.S + r0;
          scores_softmax(bg, s, qg + (i * s.S + r0) * s.d, win, rows, p.data(), L + first);
          matmul_nn(bg, rows, s.dv, ws, p.data(), ws, win.v, s.dv, O + first * s.dv, s.dv);  // O_r = P V_w
        }
      }
    }
    if (bg) at::native::cpublas::brgemm_release(false);
  });
  return {out, lse};
}

// Gradients dq, dk, dv (shapes of q, k, v) from grad_out [G, K, S, dv] and grad_lse [G, K, S].
std::vector<at::Tensor> window_backward(const at::Tensor& q, const at::Tensor& k, const at::Tensor& v,
                                           const at::Tensor& out, const at::Tensor& grad_out,
                                           const at::Tensor& grad_lse, const std::vector<int64_t>& offsets,
                                           int64_t rb) {
  const Shapes s = check(q, k, v, offsets, rb);
  TORCH_CHECK(out.sizes() == v.sizes() && grad_out.sizes() == v.sizes() && out.is_contiguous() &&
                  grad_out.is_contiguous() && grad_out.scalar_type() == at::kFloat,
              "window attention backward: out and grad_out must be contiguous float32 [G, K, S, dv]");
  TORCH_CHECK(grad_lse.is_contiguous() && grad_lse.numel() == s.G * s.K * s.S &&
                  grad_lse.scalar_type() == at::kFloat,
              "window attention backward: grad_lse must be contiguous float32 [G, K, S]");
  auto dq = at::empty_like(q), dk = at::empty_like(k), dv = at::empty_like(v);
  const float *Q = q.data_ptr<float>(), *Kp = k.data_ptr<float>(), *V = v.data_ptr<float>();
  const float *O = out.data_ptr<float>(), *dO = grad_out.data_ptr<float>(), *dL = grad_lse.data_ptr<float>();
  float *dQ = dq.data_ptr<float>(), *dK = dk.data_ptr<float>(), *dV = dv.data_ptr<float>();
  const int64_t ws = s.ws(), chunk_q = s.S * s.d, chunk_v = s.S * s.dv, ks = s.K * s.S;
  const bool bg = enlcn_native::brgemm_usable();
  at::parallel_for(0, s.G, 1, [&](int64_t g0, int64_t g1) {
    const int64_t rmax = s.rows_max();
    const bool gathered = s.W > 1;  // windows of several chunks: K's and V's gradients go through a buffer
    std::vector<float> p(rmax * ws), ds(rmax * ws), q_t(s.d * rmax), go_t(s.dv * rmax);
    std::vector<float> dk_w(gathered ? s.d * ws : 0), dv_w(gathered ? s.dv * ws : 0), delta(s.K * s.S);
    std::vector<float> dk_g(s.d * ks), dv_g(s.dv * ks);  // the group's dKᵀ [d, K·S] and dVᵀ [dv, K·S]
    Window win(s, true);
    for (int64_t g = g0; g < g1; ++g) {
      const float *qg = Q + g * s.K * chunk_q, *kg = Kp + g * s.K * chunk_q, *vg = V + g * s.K * chunk_v;
      float *dkg = dk_g.data(), *dvg = dv_g.data();
      std::fill(dk_g.begin(), dk_g.end(), 0.f);
      std::fill(dv_g.begin(), dv_g.end(), 0.f);
      for (int64_t t = 0; t < ks; ++t) {  // δ = rowsum(dO ⊙ O) − dlse: the lse's gradient joins the softmax's
        const float *o = O + (g * ks + t) * s.dv, *go = dO + (g * ks + t) * s.dv;
        float acc = 0.f;
        for (int64_t c = 0; c < s.dv; ++c) acc += go[c] * o[c];
        delta[t] = acc - dL[g * ks + t];
      }
      for (int64_t i = 0; i < s.K; ++i) {
        win.load(s, kg, vg, offsets, i);
        // the window's dKᵀ, dVᵀ: straight into the group's gradient when the window is one chunk
        const int64_t j0 = window_chunk(i, offsets[0], s.K), ld_w = gathered ? ws : ks;
        float *dk_dst = gathered ? dk_w.data() : dkg + j0 * s.S, *dv_dst = gathered ? dv_w.data() : dvg + j0 * s.S;
        for (int64_t r0 = 0; r0 < s.S; r0 += rb) {
          const int64_t rows = std::min(rb, s.S - r0), first = (g * s.K + i) * s.S + r0;
          const float *q_r = qg + (i * s.S + r0) * s.d, *go = dO + first * s.dv;
          const bool add = !(gathered && r0 == 0);  // a window buffer starts afresh with each chunk
          scores_softmax(bg, s, q_r, win, rows, p.data(), nullptr);
          transpose(go, rows, s.dv, s.dv, go_t.data(), rows);
          transpose(q_r, rows, s.d, s.d, q_t.data(), rows);
          matmul_nn(bg, s.dv, ws, rows, go_t.data(), rows, p.data(), ws, dv_dst, ld_w, add);  // dV_wᵀ += dO_rᵀ P
          matmul_nn(bg, rows, ws, s.dv, go, s.dv, win.v_t.data(), ws, ds.data(), ws);        // dP = dO_r V_wᵀ
          for (int64_t r = 0; r < rows; ++r) {  // dS = P ⊙ (dP − δ)
            float* dsr = ds.data() + r * ws;
            const float *pr = p.data() + r * ws, dr = delta[i * s.S + r0 + r];
            for (int64_t u = 0; u < ws; ++u) dsr[u] = pr[u] * (dsr[u] - dr);
          }
          matmul_nn(bg, rows, s.d, ws, ds.data(), ws, win.k, s.d, dQ + first * s.d, s.d);    // dQ_r = dS K_w
          matmul_nn(bg, s.d, ws, rows, q_t.data(), rows, ds.data(), ws, dk_dst, ld_w, add);  // dK_wᵀ += Q_rᵀ dS
        }
        if (gathered) {
          scatter_window(s, offsets, i, dk_w.data(), s.d, dkg);
          scatter_window(s, offsets, i, dv_w.data(), s.dv, dvg);
        }
      }
      transpose(dkg, s.d, ks, ks, dK + g * ks * s.d, s.d);  // [d, K·S] → the group's [K·S, d]
      transpose(dvg, s.dv, ks, ks, dV + g * ks * s.dv, s.dv);
    }
    if (bg) at::native::cpublas::brgemm_release(false);
  });
  return {dq, dk, dv};
}

// The rate (GFLOP/s, all threads) of the products this kernel runs: each thread repeats `reps` products of
// size×size blocks, C = A·B, on brgemm (or sgemm where brgemm is unusable), after one untimed product.
double product_gflops(int64_t size, int64_t reps) {
  TORCH_CHECK(size >= 1 && reps >= 1, "product_gflops: need size ≥ 1 and reps ≥ 1");
  const bool bg = enlcn_native::brgemm_usable();
  const int64_t threads = at::get_num_threads();
  std::vector<double> seconds(threads, 0.0);
  at::parallel_for(0, threads, 1, [&](int64_t t0, int64_t t1) {
    std::vector<float> a(size * size, 0.5f), b(size * size, 0.25f), c(size * size);
    for (int64_t t = t0; t < t1; ++t) {
      matmul_nn(bg, size, size, size, a.data(), size, b.data(), size, c.data(), size);
      const auto start = std::chrono::steady_clock::now();
      for (int64_t r = 0; r < reps; ++r)
        matmul_nn(bg, size, size, size, a.data(), size, b.data(), size, c.data(), size);
      seconds[t] = std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
    }
    if (bg) at::native::cpublas::brgemm_release(false);
  });
  const double slowest = *std::max_element(seconds.begin(), seconds.end());
  return threads * reps * 2.0 * size * size * size / slowest / 1e9;
}

}  // namespace

PYBIND11_MODULE(TORCH_EXTENSION_NAME, m) {
  m.def("isa", &enlcn_native::isa, "the instruction-set level it was compiled for: avx512, avx2 or generic");
  m.def("window_forward", &window_forward, "softmax attention over windows of chunks: out, lse");
  m.def("window_backward", &window_backward, "its gradients dq, dk, dv from those of out and lse");
  m.def("product_gflops", &product_gflops, "GFLOP/s of this kernel's products (size³ blocks, all threads)");
  m.def("uses_brgemm", &enlcn_native::brgemm_usable, "whether the products run on oneDNN's brgemm (else sgemm)");
  m.def("allow_brgemm", &enlcn_native::allow_brgemm, "allow (default) or forbid brgemm; forbidden, sgemm runs every product");
}
