// The contrastive loss of ENLCA (paper Eqs. 8-10) on the CPU, fused per query row, and its backward.
//
// For every query i of every image: the relevances T_ij = Q_i . K_j (Eq. 8) are computed into a row
// buffer, the `stop` largest are selected (Eq. 9's sorted T', first ranks only) without sorting the row,
// the loss term of Eq. 10 (paper form) or of the official code is computed from them, and the term's
// derivative with respect to each of the T_ij it used is returned. Nothing of size N x N is written.
//
// Selection: with G >= 2 stop groups of the row (strided: group g holds T_g, T_{g+G}, T_{g+2G}, ..., so
// the group maxima are an elementwise max of contiguous slices), any `thr` at or below the stop-th largest
// group maximum is a lower bound of the row's stop-th largest value (the `stop` groups whose maximum is
// >= thr each hold one element >= thr), so only the elements >= thr can rank among the first `stop`;
// a few bisection steps on the group maxima give such a thr. Those few
// candidates (about 1.2 stop on unstructured rows) are ranked by counting: rank_c = #{d: T_d > T_c} +
// #{d < c: T_d == T_c} (ties broken by index, as a stable sort), a branch-free O(count^2) pass that the
// compiler vectorizes. When a structured row leaves more than `counting_max` candidates (512), the rel-th,
// start-th and stop-th largest are found instead by bisection on order-preserving integer keys.
//
// Outputs per row: the term, and for the n_rel relevant ranks followed by the (stop - start) irrelevant
// ranks: the key index and d term / d T_ij (zero where a hinge is inactive). `contrastive_grads` spreads
// these sparse derivatives onto Q and K (the backward pass). Non-finite Q or K give NaN terms (and zero
// weights).

#include "torch_ext.h"

#include <algorithm>
#include <cstdint>
#include <cstring>
#include <cmath>
#include <limits>
#include <vector>

#include "simd.h"

namespace {

namespace simd = enlcn_native::simd;

struct RowOut {
  float* term;
  int64_t* index;   // [n_sel]
  float* weight;    // [n_sel]
  double* scratch;  // [n_sel]
};

// order-preserving key of a float: a > b  <=>  fkey(a) > fkey(b) (for non-NaN floats)
inline uint32_t fkey(float v) {
  uint32_t u;
  std::memcpy(&u, &v, sizeof u);
  return (u & 0x80000000u) ? ~u : (u | 0x80000000u);
}

// the s-th largest (1-based) of a[0..n), n >= s >= 1: bisection on the key, each step one branch-free
// (vectorizable) count, so no data-dependent branches (32 steps at most)
uint32_t kth_largest(const uint32_t* a, int64_t n, int64_t s) {
  uint32_t lo = 0xFFFFFFFFu, hi = 0;
  for (int64_t j = 0; j < n; ++j) {
    lo = a[j] < lo ? a[j] : lo;
    hi = a[j] > hi ? a[j] : hi;
  }
  while (lo < hi) {  // invariant: count(a >= lo) >= s > count(a > hi)
    const uint32_t mid = lo + (hi - lo) / 2 + 1;
    int32_t c = 0;  // 32-bit lanes: 16 compares per AVX-512 instruction
    for (int64_t j = 0; j < n; ++j) c += a[j] >= mid;
    if (c >= s) lo = mid; else hi = mid - 1;
  }
  return lo;
}

// membership of each candidate (in index order) in the first s ranks, ties broken by index ascending
void mark_top(const uint32_t* key, int64_t n, int64_t s, uint8_t* in, uint8_t bit) {
  const uint32_t ks = kth_largest(key, n, s);
  int64_t above = 0;
  for (int64_t j = 0; j < n; ++j) above += key[j] > ks;
  int64_t ties = s - above;  // equal keys admitted, first by index
  for (int64_t j = 0; j < n; ++j) {
    const bool take = key[j] > ks || (key[j] == ks && ties-- > 0);
    in[j] |= take ? bit : 0;
  }
}

// a value <= the s-th largest of a[0..n) (n >= s >= 1, finite): a few bisection steps on the value,
// keeping count(a >= lo) >= s. Any such lo is a valid threshold; a closer one leaves fewer candidates.
float lower_bound_of_kth(const float* a, int64_t n, int64_t s) {
  const int64_t body = n - n % simd::kLanes;  // a[0..body) in whole vectors, the rest one by one
  float lo = a[0], hi = a[0];
  if (body) {
    simd::Vec vlo = simd::load(a), vhi = vlo;
    for (int64_t j = simd::kLanes; j < body; j += simd::kLanes) {
      const simd::Vec x = simd::load(a + j);
      vlo = simd::min(vlo, x);
      vhi = simd::max(vhi, x);
    }
    lo = simd::reduce_min(vlo), hi = simd::reduce_max(vhi);
  }
  for (int64_t j = body; j < n; ++j) {
    lo = a[j] < lo ? a[j] : lo;
    hi = a[j] > hi ? a[j] : hi;
  }
  for (int step = 0; step < 12; ++step) {  // the bracket shrinks to (max - min) / 4096
    const float mid = lo + 0.5f * (hi - lo);
    int32_t c = 0;
    const simd::Vec vmid = simd::set1(mid);
    for (int64_t j = 0; j < body; j += simd::kLanes) c += simd::popcount(simd::ge(simd::load(a + j), vmid));
    for (int64_t j = body; j < n; ++j) c += a[j] >= mid;
    if (c >= s) lo = mid; else hi = mid;
  }
  return lo;
}

// ranks (value desc, index asc) of candidates given in index order, by counting: O(count^2), branch-free.
// First rank_c = #{d: key_d > key_c} alone (one compare per lane); equal keys then share a rank, so if any
// rank repeats, the ranks are recounted with ties broken by index: + #{d < c: key_d == key_c}.
void rank_by_counting(const uint32_t* key, int64_t count, int32_t* rank) {
  if constexpr (simd::kLanes == 1) {  // scalar: both counts in one pass
    for (int64_t c = 0; c < count; ++c) {
      const uint32_t kc = key[c];
      int32_t r = 0;
      for (int64_t d = 0; d < count; ++d) r += (key[d] > kc) | ((key[d] == kc) & (d < c));
      rank[c] = r;
    }
    return;
  }
  uint64_t seen[8] = {0, 0, 0, 0, 0, 0, 0, 0};  // ranks met so far (count <= COUNTING_MAX = 512 bits)
  bool distinct = count <= 512;
  for (int64_t c = 0; c < count; ++c) {
    const simd::VecU kc = simd::set1_u32(key[c]);
    int32_t r = 0;
    for (int64_t d = 0; d < count; d += simd::kLanes)  // lanes past count load 0 and are masked off
      r += simd::popcount(simd::gt_u32(simd::load_u32_first(key + d, count - d), kc) & simd::first(count - d));
    rank[c] = r;
    if (distinct) {
      const uint64_t bit = uint64_t(1) << (r & 63);
      distinct = !(seen[r >> 6] & bit);
      seen[r >> 6] |= bit;
    }
  }
  if (distinct) return;
  const simd::VecU lane = simd::lanes_u32();
  for (int64_t c = 0; c < count; ++c) {
    const simd::VecU kc = simd::set1_u32(key[c]);
    const simd::VecU vc = simd::set1_u32((uint32_t)c);
    int32_t r = 0;
    for (int64_t d = 0; d < count; d += simd::kLanes) {
      const unsigned valid = simd::first(count - d);
      const simd::VecU kd = simd::load_u32_first(key + d, count - d);
      const simd::VecU vd = simd::add_u32(simd::set1_u32((uint32_t)d), lane);
      const unsigned gt = simd::gt_u32(kd, kc);
      const unsigned tie = simd::eq_u32(kd, kc) & simd::lt_i32(vd, vc);
      r += simd::popcount((gt | tie) & valid);
    }
    rank[c] = r;
  }
}

// the first `stop` ranks of t[0..n) (value desc, index asc), as indices into `top`:
// top[0..rel) = the first rel ranks, top[start..stop) = ranks start..stop-1 (in rank order when ranked by
// counting, in index order otherwise; the loss only needs each band as a set)
void select_top(const float* t, int64_t n, int64_t rel, int64_t start, int64_t stop, int64_t counting_max,
                std::vector<uint32_t>& buf, std::vector<uint8_t>& in, int64_t* top) {
  int64_t group = 1;  // the largest power of two that leaves >= 2 stop groups (a tight bound, few candidates)
  while (4 * group * stop <= n) group *= 2;
  uint32_t* gk = buf.data();        // [n] scratch: the candidates' ranks
  uint32_t* idx = buf.data() + n;   // [n] candidate indices
  uint32_t* ck = buf.data() + 2 * n;  // [n] candidate keys
  float thr = -std::numeric_limits<float>::infinity();
  if (group > 1) {
    const int64_t groups = n / group;  // a ragged tail belongs to no group: it is compared with thr like all
    float* gm = reinterpret_cast<float*>(idx);  // scratch: the group maxima, before compaction uses idx
    std::memcpy(gm, t, groups * sizeof(float));
    for (int64_t r = 1; r < group; ++r) {
      const float* x = t + r * groups;
      for (int64_t g = 0; g < groups; ++g) gm[g] = x[g] > gm[g] ? x[g] : gm[g];
    }
    thr = lower_bound_of_kth(gm, groups, stop);
  }
  int64_t count = 0;  // compaction of the candidates (value >= thr), in index order
  int64_t j = 0;
  const simd::Vec vthr = simd::set1(thr);
  simd::VecU vidx = simd::lanes_u32();
  const simd::VecU step = simd::set1_u32((uint32_t)simd::kLanes);
  for (; j + simd::kLanes <= n; j += simd::kLanes) {
    const unsigned keep = simd::ge(simd::load(t + j), vthr);
    // all kLanes lanes are stored: those past the kept ones land in idx[count + kept .. count + kLanes − 1],
    // inside the buffer (count <= j) and overwritten by later stores or never read
    simd::store_compressed_u32(idx + count, vidx, keep);
    count += simd::popcount(keep);
    vidx = simd::add_u32(vidx, step);
  }
  for (; j < n; ++j) {
    idx[count] = (uint32_t)j;
    count += (t[j] >= thr);
  }
  for (int64_t c = 0; c < count; ++c) ck[c] = fkey(t[idx[c]]);
  if (count <= counting_max) {
    int32_t* rank = reinterpret_cast<int32_t*>(gk);
    rank_by_counting(ck, count, rank);
    for (int64_t c = 0; c < count; ++c)
      if (rank[c] < stop) top[rank[c]] = idx[c];  // ranks rel..start-1 are written and not used
    return;
  }
  in.assign(count, 0);
  mark_top(ck, count, rel, in.data(), 1);
  mark_top(ck, count, start, in.data(), 2);
  mark_top(ck, count, stop, in.data(), 4);
  int64_t r_rel = 0, r_band = start;
  for (int64_t c = 0; c < count; ++c) {
    if (in[c] & 1) top[r_rel++] = idx[c];
    else if ((in[c] & 4) && !(in[c] & 2)) top[r_band++] = idx[c];
  }
}

// T_i = sum_c q_ic K_c (Eq. 8) into t[0..N), kt = K transposed [C, N]. Four vectors of the row are
// accumulated in registers over the C channels, so the row is written once (not C times).
void relevance_row(const float* qi, const float* kt, int64_t C, int64_t N, float* t) {
  constexpr int64_t L = simd::kLanes;
  int64_t j = 0;
  for (; j + 4 * L <= N; j += 4 * L) {
    simd::Vec a0 = simd::zero(), a1 = a0, a2 = a0, a3 = a0;
    for (int64_t c = 0; c < C; ++c) {
      const simd::Vec s = simd::set1(qi[c]);
      const float* kc = kt + c * N + j;
      a0 = simd::fmadd(s, simd::load(kc), a0);
      a1 = simd::fmadd(s, simd::load(kc + L), a1);
      a2 = simd::fmadd(s, simd::load(kc + 2 * L), a2);
      a3 = simd::fmadd(s, simd::load(kc + 3 * L), a3);
    }
    simd::store(t + j, a0);
    simd::store(t + j + L, a1);
    simd::store(t + j + 2 * L, a2);
    simd::store(t + j + 3 * L, a3);
  }
  for (; j < N; ++j) {  // the tail, channel by channel as above
    float acc = 0.f;
    for (int64_t c = 0; c < C; ++c) acc = std::fma(qi[c], kt[c * N + j], acc);
    t[j] = acc;
  }
}

// loss term and its derivatives from the selected values (Eq. 10 or the official code's form)
void row_term(const float* t, const int64_t* top, int64_t rel, int64_t start, int64_t stop, bool official,
              double margin, bool hinge, RowOut out) {
  const int64_t n_neg = stop - start;
  double pmax = -std::numeric_limits<double>::infinity(), nmax = pmax;
  for (int64_t r = 0; r < rel; ++r) pmax = std::max(pmax, (double)t[top[r]]);
  for (int64_t r = start; r < stop; ++r) nmax = std::max(nmax, (double)t[top[r]]);
  // e[s]: the exponentials of the n_sel used relevances (official: plain, as the official code; paper:
  // shifted by each band's maximum, as logsumexp)
  double* e = out.scratch;
  const double shift_pos = official ? 0.0 : pmax, shift_neg = official ? 0.0 : nmax;
  double spos = 0.0, sneg = 0.0;
  for (int64_t r = 0; r < rel; ++r) spos += (e[r] = std::exp((double)t[top[r]] - shift_pos));
  for (int64_t r = start; r < stop; ++r) sneg += (e[rel + r - start] = std::exp((double)t[top[r]] - shift_neg));
  double raw, dpos, dneg;  // the term, and the factors turning e into d term / d T
  if (official) {  // relu(-log(mean e^pos / (mean e^neg + 1e-6)) + b)
    const double pos = spos / rel, neg = sneg / n_neg;
    raw = -std::log(pos / (neg + 1e-6)) + margin;
    dpos = -1.0 / (rel * pos);
    dneg = 1.0 / (n_neg * (neg + 1e-6));
  } else {  // -(logsumexp(pos) - logsumexp(neg)) + b
    raw = -((pmax + std::log(spos)) - (nmax + std::log(sneg))) + margin;
    dpos = -1.0 / spos;
    dneg = 1.0 / sneg;
  }
  const bool active = official || hinge ? raw > 0.0 : true;
  *out.term = (float)(active ? raw : 0.0);
  for (int64_t r = 0; r < rel; ++r) {
    out.index[r] = top[r];
    out.weight[r] = active ? (float)(e[r] * dpos) : 0.f;
  }
  for (int64_t r = start; r < stop; ++r) {
    const int64_t s = rel + r - start;
    out.index[s] = top[r];
    out.weight[s] = active ? (float)(e[s] * dneg) : 0.f;
  }
}

}  // namespace

// q, k: [B, N, c] float32. Returns (terms [B, N], index [B, N, n_sel] int64, weight [B, N, n_sel]).
// counting_max: rows with at most this many candidates are ranked by counting, others by bisection
std::vector<at::Tensor> contrastive_rows(at::Tensor q, at::Tensor k, int64_t rel, int64_t start,
                                            int64_t stop, bool official, double margin, bool hinge,
                                            int64_t counting_max) {
  TORCH_CHECK(q.dim() == 3 && q.sizes() == k.sizes(), "contrastive_rows: q and k must be [B, N, c] alike");
  TORCH_CHECK(q.scalar_type() == at::kFloat && k.scalar_type() == at::kFloat,
              "contrastive_rows: float32 only");
  TORCH_CHECK(0 < rel && rel <= start && start < stop && stop <= q.size(1),
              "contrastive_rows: need 0 < rel <= start < stop <= N");
  TORCH_CHECK(q.size(1) < (int64_t(1) << 31), "contrastive_rows: N must fit 31 bits");
  q = q.contiguous();
  auto kt = k.transpose(1, 2).contiguous();  // [B, c, N]: each relevance row is c axpy passes
  const int64_t B = q.size(0), N = q.size(1), C = q.size(2), n_sel = rel + stop - start;
  auto terms = at::empty({B, N}, q.options());
  auto index = at::empty({B, N, n_sel}, q.options().dtype(at::kLong));
  auto weight = at::empty({B, N, n_sel}, q.options());
  const float* qp = q.data_ptr<float>();
  const float* kp = kt.data_ptr<float>();
  float* tp = terms.data_ptr<float>();
  int64_t* ip = index.data_ptr<int64_t>();
  float* wp = weight.data_ptr<float>();
  // non-finite embeddings make every term NaN (as the reference's sums would); checked once, not per row
  const bool finite = at::isfinite(q).all().item<bool>() && at::isfinite(k).all().item<bool>();
#pragma omp parallel
  {
    std::vector<float> row(N);
    std::vector<uint32_t> buf(3 * N);
    std::vector<uint8_t> in;
    std::vector<int64_t> top(stop);
    std::vector<double> scratch(n_sel);
#pragma omp for schedule(static)
    for (int64_t r = 0; r < B * N; ++r) {
      const int64_t b = r / N;
      const float* qi = qp + r * C;
      const float* kb = kp + b * C * N;
      relevance_row(qi, kb, C, N, row.data());
      RowOut out{tp + r, ip + r * n_sel, wp + r * n_sel, scratch.data()};
      if (!finite) {
        *out.term = std::numeric_limits<float>::quiet_NaN();
        for (int64_t s = 0; s < n_sel; ++s) out.index[s] = 0, out.weight[s] = 0.f;
        continue;
      }
      select_top(row.data(), N, rel, start, stop, counting_max, buf, in, top.data());
      row_term(row.data(), top.data(), rel, start, stop, official, margin, hinge, out);
    }
  }
  return {terms, index, weight};
}

// The backward pass: with w = scale * weight, dQ_i = sum_s w_is K_{j_s} and dK_j = sum_{(i,s): j_s = j} w_is Q_i.
// A row's keys lie in its own image, so images are independent: one image per thread, no atomics, and the
// same sums in the same order whatever the thread count.
std::vector<at::Tensor> contrastive_grads(at::Tensor q, at::Tensor k, at::Tensor index,
                                             at::Tensor weight, double scale) {
  TORCH_CHECK(q.dim() == 3 && q.sizes() == k.sizes(), "contrastive_grads: q and k must be [B, N, c] alike");
  TORCH_CHECK(index.dim() == 3 && index.sizes() == weight.sizes() && index.size(0) == q.size(0) &&
                  index.size(1) == q.size(1), "contrastive_grads: index and weight must be [B, N, n_sel]");
  TORCH_CHECK(index.scalar_type() == at::kLong && weight.scalar_type() == at::kFloat &&
                  q.scalar_type() == at::kFloat && k.scalar_type() == at::kFloat,
              "contrastive_grads: float32 q, k, weight and int64 index only");
  q = q.contiguous(), k = k.contiguous(), index = index.contiguous(), weight = weight.contiguous();
  const int64_t B = q.size(0), N = q.size(1), C = q.size(2), S = index.size(2);
  auto dq = at::zeros_like(q);
  auto dk = at::zeros_like(k);
  const float* qp = q.data_ptr<float>();
  const float* kp = k.data_ptr<float>();
  const int64_t* ip = index.data_ptr<int64_t>();
  const float* wp = weight.data_ptr<float>();
  float* dqp = dq.data_ptr<float>();
  float* dkp = dk.data_ptr<float>();
  const float sc = (float)scale;
#pragma omp parallel for schedule(static)
  for (int64_t b = 0; b < B; ++b) {
    const float* kb = kp + b * N * C;
    float* dkb = dkp + b * N * C;
    for (int64_t i = 0; i < N; ++i) {
      const int64_t r = b * N + i;
      const float* qi = qp + r * C;
      float* dqi = dqp + r * C;
      for (int64_t s = 0; s < S; ++s) {
        const int64_t j = ip[r * S + s];
        const float w = sc * wp[r * S + s];
        const float* kj = kb + j * C;
        float* dkj = dkb + j * C;
#pragma omp simd
        for (int64_t c = 0; c < C; ++c) {
          dqi[c] += w * kj[c];
          dkj[c] += w * qi[c];
        }
      }
    }
  }
  return {dq, dk};
}

PYBIND11_MODULE(TORCH_EXTENSION_NAME, m) {
  m.def("isa", &enlcn_native::isa, "the instruction-set level it was compiled for: avx512, avx2 or generic");
  m.def("contrastive_rows", &contrastive_rows, "ENLCA contrastive loss terms and sparse derivatives per query");
  m.def("contrastive_grads", &contrastive_grads, "the backward pass: sparse derivatives spread onto Q and K");
}
