// The book's live correlation-map explorer. Reads window.ENLCN_EXPLORER (explorer-data.js, written by
// enlcn.study.explorer from the trained models): every ENLA/ENLCA module's embeddings Q, K (Eq. 3) and
// trained random features F (Eq. 4). For ANY clicked position i it computes, in the browser:
//   exact map     softmax(Qᵢᵀ K)                              (the paper's correlation map)
//   estimate      row i of D⁻¹ φ(Q)ᵀ φ(K)                     (ENLA, Eqs. 4–6: what the module aggregates with)
//   their difference and the numbers of enlcn.explore.map_numbers.
// No network, no kernel, no dependencies: plain JS and canvas.
(function () {
  "use strict";
  const D = window.ENLCN_EXPLORER;
  const root = document.getElementById("enlcn-explorer");
  if (!root) return;
  if (!D) { root.textContent = "explorer data missing (_static/explorer/explorer-data.js)"; return; }

  const TOP_SHARE = 0.02;          // "mass on the top 2 % of positions" (enlcn.explore.TOP_SHARE)
  const M_CHOICES = [4, 8, 16, 32, 64, 128];  // 256 took ~90 ms per update on a loaded 2-core machine
  const MAP_MAX = 250, MAP_MIN = 150;  // the longer side of every map, in CSS pixels: two panels a row if they fit
  const M = { left: 34, top: 4, bottom: 30, gap: 8, bar: 12, barText: 46 };  // panel margins, CSS px
  const DECADES = 6;               // log colour scale: at most this many decades below the top weight

  // ------------------------------------------------------------------------------------ decoding
  // The coding of enlcn.study.explorer.pack_embeddings: per image and model, every Q and K's unit
  // directions as integer coordinates (in steps of entry.step, 9·2^-15 for c = 12: every row within 2^-11) in
  // the array's own basis; median-predicted residuals, Rice-coded in blocks of 16, written 13 bits to two
  // letters. Decoded once per image and model.
  const BLOCK = 16, K_BITS = 4, GROUP = 13;
  const ALPHABET = Array.from({ length: 92 }, (_, i) => String.fromCharCode(35 + i)).filter((ch) => ch !== "\\").join("");
  function bytes(b64) {
    const bin = atob(b64), out = new Uint8Array(bin.length);
    for (let i = 0; i < bin.length; i++) out[i] = bin.charCodeAt(i);
    return out;
  }
  function floats(b64) { return Float64Array.from(new Float32Array(bytes(b64).buffer)); }
  function textBits(text) {  // two letters → 13 bits, most significant first, one bit a byte
    const index = new Int16Array(128).fill(-1);
    for (let i = 0; i < ALPHABET.length; i++) index[ALPHABET.charCodeAt(i)] = i;
    const bits = new Uint8Array((text.length >> 1) * GROUP);
    for (let g = 0, o = 0; 2 * g < text.length; g++) {
      const v = index[text.charCodeAt(2 * g)] + 91 * index[text.charCodeAt(2 * g + 1)];
      for (let t = GROUP - 1; t >= 0; t--) bits[o++] = (v >> t) & 1;
    }
    return bits;
  }
  // The integer codes, plane by plane ([P][h·w], P = count·c planes), of one packed set (rice_unpack, med_undo).
  function decodeCodes(packed, P, h, w) {
    const n = h * w, blocks = Math.ceil(n / BLOCK), nb = P * blocks, bits = textBits(packed.codes);
    let pos = 0;
    const ks = new Uint8Array(nb);
    for (let b = 0; b < nb; b++) { let v = 0; for (let t = 0; t < K_BITS; t++) v = 2 * v + bits[pos++]; ks[b] = v; }
    const z = new Int32Array(nb * BLOCK);  // zigzagged residuals (< 2³¹)
    for (let i = 0; i < z.length; i++) {  // the low bits first…
      const k = ks[Math.floor(i / BLOCK)];
      let v = 0; for (let t = 0; t < k; t++) v = 2 * v + bits[pos++];
      z[i] = v;
    }
    for (let i = 0; i < z.length; i++) {  // …then the unary high parts
      let q = 0; while (bits[pos++] === 0) q++;
      z[i] += q << ks[Math.floor(i / BLOCK)];
    }
    const codes = new Int32Array(P * n);
    for (let p = 0; p < P; p++) {
      const off = p * n, zoff = p * blocks * BLOCK;
      for (let y = 0; y < h; y++) for (let x = 0; x < w; x++) {  // undo the median prediction in raster order
        const L = x > 0 ? codes[off + y * w + x - 1] : 0, U = y > 0 ? codes[off + (y - 1) * w + x] : 0;
        const UL = x > 0 && y > 0 ? codes[off + (y - 1) * w + x - 1] : 0;
        const lo = Math.min(L, U), hi = Math.max(L, U), pred = UL >= hi ? lo : UL <= lo ? hi : L + U - UL;
        const zz = z[zoff + y * w + x], r = zz & 1 ? -((zz + 1) >> 1) : zz >> 1;
        codes[off + y * w + x] = r + pred;
      }
    }
    return codes;
  }
  // Unit directions (row-major n×c, float64) v̂ = step·codes·basisᵀ of the array whose planes start at
  // plane0, summed as enlcn.study.explorer.unit_directions does; not renormalised (Q = √k·v̂).
  function directions(codes, basis, step, plane0, c, n) {
    const u = new Float64Array(n * c);
    for (let j = 0; j < n; j++) {
      for (let b = 0; b < c; b++) {
        const coord = codes[(plane0 + b) * n + j] * step;
        for (let a = 0; a < c; a++) u[j * c + a] += coord * basis[a * c + b];
      }
    }
    return u;
  }

  const packed = new Map();  // image|model → Promise of its codes and bases
  function codesOf(image, model) {
    const key = image + "|" + model;
    if (!packed.has(key)) {
      const [h, w] = D.images[image].shape, entry = D.images[image].embeddings[model];
      const P = 2 * D.models[model].length * D.models[model][0].c;
      // one set per task (~0.2 s each under load), so that clicks are served between background decodes
      packed.set(key, new Promise((done) => setTimeout(() => done({ codes: decodeCodes(entry, P, h, w), bases: floats(entry.bases), step: entry.step }), 0)));
    }
    return packed.get(key);
  }
  const unitCache = new Map();  // image|model|module → {uq, uk}
  async function units(image, model, module) {
    const key = image + "|" + model + "|" + module;
    if (!unitCache.has(key)) {
      const { codes, bases, step } = await codesOf(image, model), [h, w] = D.images[image].shape;
      const c = D.models[model][module].c, n = h * w, basis = (j) => bases.subarray(j * c * c, (j + 1) * c * c);
      unitCache.set(key, {
        uq: directions(codes, basis(2 * module), step, 2 * module * c, c, n),
        uk: directions(codes, basis(2 * module + 1), step, (2 * module + 1) * c, c, n),
      });
    }
    return unitCache.get(key);
  }

  // ------------------------------------------------------------------------- random features (Eq. 4)
  function mulberry32(seed) {  // a small seeded uniform generator in [0, 1)
    let t = seed >>> 0;
    return function () {
      t = (t + 0x6d2b79f5) >>> 0;
      let r = Math.imul(t ^ (t >>> 15), 1 | t);
      r = (r + Math.imul(r ^ (r >>> 7), 61 | r)) ^ r;
      return ((r ^ (r >>> 14)) >>> 0) / 4294967296;
    };
  }
  function gaussian(uniform) {  // Box–Muller: one N(0, 1) draw
    return Math.sqrt(-2 * Math.log(1 - uniform())) * Math.cos(2 * Math.PI * uniform());
  }
  // A fresh F (m×c, row-major). Orthogonal (the official code, enlcn.attention.kernels.gaussian_projection):
  // ceil(m/c) blocks of c orthonormal rows — Gram–Schmidt on the rows of a c×c Gaussian matrix, i.e. the Q
  // of its QR with a positive diagonal of R, hence Haar — each row then scaled by the norm of a fresh
  // N(0, I_c) vector (χ_c lengths, like Gaussian rows). I.i.d.: m rows of N(0, I_c) (the paper's text).
  function drawFeatures(m, c, orthogonal, seed) {
    const uniform = mulberry32(0x9e3779b9 ^ seed), F = new Float64Array(m * c);
    if (!orthogonal) { for (let i = 0; i < m * c; i++) F[i] = gaussian(uniform); return F; }
    for (let r0 = 0; r0 < m; r0 += c) {
      const block = [];
      for (let r = 0; r < c; r++) {
        const v = Float64Array.from({ length: c }, () => gaussian(uniform));
        for (const e of block) {  // remove the components along the rows already made orthonormal
          let dot = 0; for (let a = 0; a < c; a++) dot += v[a] * e[a];
          for (let a = 0; a < c; a++) v[a] -= dot * e[a];
        }
        let norm = 0; for (let a = 0; a < c; a++) norm += v[a] * v[a];
        norm = Math.sqrt(norm);
        block.push(v.map((x) => x / norm));
      }
      block.slice(0, Math.min(c, m - r0)).forEach((e, r) => F.set(e, (r0 + r) * c));
    }
    for (let r = 0; r < m; r++) {  // χ_c row lengths
      let len = 0; for (let a = 0; a < c; a++) { const g = gaussian(uniform); len += g * g; }
      len = Math.sqrt(len);
      for (let a = 0; a < c; a++) F[r * c + a] *= len;
    }
    return F;
  }

  // ----------------------------------------------------------------------------------------- maps
  // The exponents a = F u − ‖u‖²/2 of φ(u) = m^-½ (exp(a) + ε) (Eq. 4) for the rows u = √k·U[j].
  function exponents(U, rows, c, F, m, k) {
    const a = new Float64Array(rows.length * m), sk = Math.sqrt(k);
    rows.forEach((j, t) => {
      let sq = 0; for (let b = 0; b < c; b++) sq += (sk * U[j * c + b]) ** 2;
      for (let r = 0; r < m; r++) {
        let dot = 0; for (let b = 0; b < c; b++) dot += F[r * c + b] * U[j * c + b];
        a[t * m + r] = sk * dot - 0.5 * sq;
      }
    });
    return a;
  }
  // φ up to a positive factor constant over `a` (the shift s = max a, as in kernels.shifted_features):
  // exp(a − s) + ε·exp(−s). The factor m^-½·exp(−s) cancels between Eq. 5's numerator and D (Eq. 6).
  function shiftedFeatures(a, eps) {
    let s = -Infinity; for (let i = 0; i < a.length; i++) s = Math.max(s, a[i]);
    const off = eps * Math.exp(-s);
    return a.map((x) => Math.exp(x - s) + off);
  }
  function exactMap(uq, uk, i, c, n, k) {  // softmax(Qᵢᵀ K) with Q = √k·U_Q, K = √k·U_K: logits k·cos
    const z = new Float64Array(n);
    let top = -Infinity;
    for (let j = 0; j < n; j++) {
      let dot = 0; for (let b = 0; b < c; b++) dot += uq[i * c + b] * uk[j * c + b];
      z[j] = k * dot; top = Math.max(top, z[j]);
    }
    let sum = 0; for (let j = 0; j < n; j++) { z[j] = Math.exp(z[j] - top); sum += z[j]; }
    for (let j = 0; j < n; j++) z[j] /= sum;
    return z;
  }
  function estimateMap(phiQ, phiK, n, m) {  // row i of D⁻¹ φ(Q)ᵀ φ(K) (Eqs. 5–6): sums to 1 exactly
    const w = new Float64Array(n);
    let sum = 0;
    for (let j = 0; j < n; j++) {
      let s = 0; for (let r = 0; r < m; r++) s += phiK[j * m + r] * phiQ[r];
      w[j] = s; sum += s;
    }
    for (let j = 0; j < n; j++) w[j] /= sum;
    return w;
  }

  // -------------------------------------------------------------- numbers (enlcn.explore.map_numbers)
  function roundHalfEven(x) { const f = Math.floor(x), d = x - f; return d > 0.5 || (d === 0.5 && f % 2 === 1) ? f + 1 : f; }
  function descending(w) {  // indices by weight, highest first, ties by index (numpy's stable argsort of −w)
    return Array.from(w.keys()).sort((a, b) => w[b] - w[a] || a - b);
  }
  function mapNumbers(exact, estimate, repeats) {
    const out = {}, maps = { exact: exact, estimate: estimate }, order = {};
    for (const [name, w] of Object.entries(maps)) {
      let ent = 0, sq = 0;
      for (let j = 0; j < w.length; j++) { if (w[j] > 0) ent -= w[j] * Math.log(w[j]); sq += w[j] * w[j]; }
      order[name] = descending(w);
      const top = Math.max(1, roundHalfEven(TOP_SHARE * w.length));
      let mass = 0; for (let t = 0; t < top; t++) mass += w[order[name][t]];
      out[name + " entropy"] = ent;
      out[name + " effective positions"] = 1 / sq;
      out[name + " top 2% mass"] = mass;
    }
    let tv = 0; for (let j = 0; j < exact.length; j++) tv += Math.abs(estimate[j] - exact[j]);
    out["TV(estimate, exact)"] = 0.5 * tv;
    const count = repeats ? repeats.reduce((s, r) => s + r, 0) : 0;
    if (count > 0) {
      out["uniform mass on repeats"] = count / repeats.length;
      for (const [name, w] of Object.entries(maps)) {
        let mass = 0, hits = 0;
        for (let j = 0; j < w.length; j++) if (repeats[j]) mass += w[j];
        for (let t = 0; t < count; t++) hits += repeats[order[name][t]];
        out[name + " mass on repeats"] = mass;
        out[name + " precision on repeats"] = hits / count;
      }
    }
    return out;
  }
  // The query's true repeats (enlcn.data.synthetic.true_repeats): same label, not background, not itself.
  function trueRepeats(labels, i) {
    if (!labels || labels[i] < 0) return null;
    return Uint8Array.from(labels, (l, j) => (l === labels[i] && j !== i ? 1 : 0));
  }

  // ---------------------------------------------------------------------------------------- colour
  const MAGMA = [[0,0,4],[12,8,38],[35,15,81],[63,15,114],[89,21,126],[114,31,129],[140,41,129],
    [166,49,125],[193,58,117],[218,70,104],[239,90,90],[250,119,82],[254,150,99],[254,182,122],
    [253,214,150],[252,253,191]];  // matplotlib's magma, 16 anchors
  function magma(t) {
    const x = Math.max(0, Math.min(1, t)) * (MAGMA.length - 1), i = Math.min(Math.floor(x), MAGMA.length - 2), f = x - i;
    return MAGMA[i].map((v, ch) => Math.round(v + f * (MAGMA[i + 1][ch] - v)));
  }
  function rdbu(t) {  // t in [−1, 1]: blue (estimate below exact), white, red (above)
    const a = Math.min(1, Math.abs(t)), end = t < 0 ? [33, 102, 172] : [178, 24, 43];
    return end.map((v) => Math.round(255 * (1 - a) + v * a));
  }
  function fmt(x) {
    if (x === 0) return "0";
    const e = Math.abs(x);
    return e >= 0.01 && e < 1000 ? x.toPrecision(3).replace(/\.?0+$/, "") : x.toExponential(1);
  }

  // ----------------------------------------------------------------------------------------- layout
  function el(tag, attrs, parent) {
    const e = document.createElement(tag);
    Object.entries(attrs || {}).forEach(([k, v]) => (k === "text" ? (e.textContent = v) : e.setAttribute(k, v)));
    if (parent) parent.appendChild(e);
    return e;
  }
  root.classList.add("enlcn-live-explorer");
  const controls = el("div", { class: "enlcn-explorer-controls", style: "display:flex;flex-wrap:wrap;gap:6px 16px;align-items:center" }, root);
  function menu(label, name) {
    const lab = el("label", { text: label + " " }, controls);
    return el("select", { name: name }, lab);
  }
  function fill(select, options) {  // new options, keeping the chosen one when it is still offered
    const keep = select.value;
    select.innerHTML = "";
    options.forEach(([v, t]) => el("option", { value: v, text: t }, select));
    if (options.some(([v]) => v === keep)) select.value = keep;
  }
  const sImage = menu("image", "image"), sModel = menu("model", "model"), sModule = menu("module", "module");
  fill(sImage, Object.keys(D.images).map((k) => [k, k]));
  fill(sModel, Object.keys(D.models).map((m) => [m, m]));
  sModel.value = Object.keys(D.models).at(-1);  // ENLCN when trained
  const knobs = el("div", { class: "enlcn-explorer-knobs", style: "display:flex;flex-wrap:wrap;gap:6px 16px;align-items:center;margin-top:6px" }, root);
  function slider(name, min, max, step) {
    const lab = el("label", {}, knobs), input = el("input", { type: "range", name: name, min: min, max: max, step: step }, lab);
    const text = el("span", { style: "display:inline-block;min-width:11em;margin-left:4px" }, lab);
    return [input, text];
  }
  const [kInput, kText] = slider("k", 0.5, 20, 0.5);
  const [mInput, mText] = slider("m", 0, M_CHOICES.length - 1, 1);
  const bOwn = el("button", { type: "button", name: "own", text: "module's own k, m, features" }, knobs);
  const bRedraw = el("button", { type: "button", name: "redraw", text: "redraw features" }, knobs);
  const orthoLab = el("label", { text: " orthogonal blocks" }, knobs);
  const cOrtho = el("input", { type: "checkbox", name: "orthogonal" });
  orthoLab.prepend(cOrtho);
  const status = el("div", { class: "enlcn-explorer-status", style: "font-size:0.8em;margin-top:4px;color:#444" }, root);
  const panes = el("div", { class: "enlcn-explorer-panes", style: "display:flex;flex-wrap:wrap;align-items:flex-end;gap:4px 10px;margin-top:6px" }, root);
  function pane(title) {
    const d = el("div", { style: "width:min-content" }, panes);  // as wide as its canvas: titles wrap
    el("div", { text: title, style: "font-size:0.8em;font-weight:600;padding-left:" + M.left + "px" }, d);
    return el("canvas", { style: "display:block" }, d);
  }
  const cImage = pane("LR image (click any panel to set the query)");
  const cExact = pane("exact softmax(QᵢᵀK), log10 weight");
  const cEst = pane("ENLA estimate D⁻¹φ(Qᵢ)ᵀφ(K), log10 weight");
  const cDiff = pane("estimate − exact");
  const legend = el("div", { style: "font-size:0.8em" }, root);
  legend.innerHTML = '<span style="color:#d00">■</span> query (white ring) &nbsp; '
    + '<span style="color:#0c0">□</span> its true repeats (self-similar image)';
  const table = el("table", { class: "enlcn-explorer-numbers", style: "font-size:0.8em;margin-top:6px" }, root);

  // ------------------------------------------------------------------------------------------ state
  // Mirrors enlcn.explore.Knobs: null keeps the module's own value.
  const S = { image: sImage.value, model: sModel.value, module: 2, query: null, k: null, m: null, seed: null, orthogonal: null };
  const images = {};  // name → {h, w, labels, rgb (an Image)}
  for (const [name, im] of Object.entries(D.images)) {
    const [h, w] = im.shape, rgb = new Image();
    rgb.src = "data:image/png;base64," + im.lr;
    const labels = im.labels ? Int16Array.from(new Int16Array(bytes(im.labels).buffer)) : null;
    images[name] = { h: h, w: w, labels: labels, rgb: rgb, ready: rgb.decode().catch(() => null) };
  }
  function defaultQuery(name) {  // a motif pixel with repeats nearest the centre, else the centre
    const { h, w, labels } = images[name];
    let best = [h >> 1, w >> 1], bd = Infinity;
    if (labels) {
      const count = new Map();
      labels.forEach((l) => count.set(l, (count.get(l) || 0) + 1));
      labels.forEach((l, j) => {
        const r = Math.floor(j / w), c = j % w, d = (r - h / 2) ** 2 + (c - w / 2) ** 2;
        if (l >= 0 && count.get(l) >= 2 && d < bd) { bd = d; best = [r, c]; }
      });
    }
    return best;
  }
  S.query = defaultQuery(S.image);
  function moduleOf() { return D.models[S.model][S.module]; }
  function effective() {  // the knobs actually used, filled in from the module
    const mod = moduleOf(), own = S.m === null && S.seed === null && S.orthogonal === null;
    return {
      k: S.k === null ? mod.k : S.k,
      m: S.m === null ? mod.m : S.m,
      own: own,
      seed: S.seed === null ? 0 : S.seed,
      orthogonal: S.orthogonal === null ? mod.orthogonal : S.orthogonal,
    };
  }
  const featureCache = new Map(), phiKCache = new Map();
  function features(model, module, e) {
    const mod = D.models[model][module];
    const key = e.own ? model + "|" + module : [e.m, mod.c, e.orthogonal, e.seed].join("|");
    if (!featureCache.has(key)) featureCache.set(key, e.own ? floats(mod.projection) : drawFeatures(e.m, mod.c, e.orthogonal, e.seed));
    return { key: key, F: featureCache.get(key) };
  }

  // ------------------------------------------------------------------------------------------ drawing
  function geometry(h, w) {
    const room = Math.floor((root.clientWidth - 2 * (M.left + M.gap + M.bar + M.barText) - 40) / 2);
    const zoom = Math.max(MAP_MIN, Math.min(MAP_MAX, room)) / Math.max(h, w);
    return { zoom: zoom, W: w * zoom, H: h * zoom };
  }
  function setupCanvas(canvas, g) {  // every panel keeps a colour bar's room, so the panels line up
    const ratio = window.devicePixelRatio || 1;
    const cssW = M.left + g.W + M.gap + M.bar + M.barText, cssH = M.top + g.H + M.bottom;
    canvas.width = Math.round(cssW * ratio); canvas.height = Math.round(cssH * ratio);
    canvas.style.width = cssW + "px"; canvas.style.height = cssH + "px";
    const ctx = canvas.getContext("2d");
    ctx.setTransform(ratio, 0, 0, ratio, 0, 0);
    ctx.clearRect(0, 0, cssW, cssH);
    ctx.imageSmoothingEnabled = false;
    return ctx;
  }
  function heat(ctx, g, h, w, colour) {  // one colour per LR position, scaled up without smoothing
    const tmp = document.createElement("canvas"); tmp.width = w; tmp.height = h;
    const img = tmp.getContext("2d").createImageData(w, h);
    for (let j = 0; j < h * w; j++) { const c = colour(j); img.data[4 * j] = c[0]; img.data[4 * j + 1] = c[1]; img.data[4 * j + 2] = c[2]; img.data[4 * j + 3] = 255; }
    tmp.getContext("2d").putImageData(img, 0, 0);
    ctx.drawImage(tmp, M.left, M.top, g.W, g.H);
  }
  function axes(ctx, g, h, w) {  // LR row/column ticks every 16 positions
    ctx.fillStyle = "#222"; ctx.strokeStyle = "#222"; ctx.lineWidth = 1; ctx.font = "10px sans-serif";
    ctx.strokeRect(M.left - 0.5, M.top - 0.5, g.W + 1, g.H + 1);
    ctx.textAlign = "center"; ctx.textBaseline = "top";
    for (let c = 0; c < w; c += 16) { const x = M.left + (c + 0.5) * g.zoom; ctx.fillText(String(c), x, M.top + g.H + 3); ctx.fillRect(x, M.top + g.H, 1, 3); }
    ctx.fillText("column", M.left + g.W / 2, M.top + g.H + 16);
    ctx.textAlign = "right"; ctx.textBaseline = "middle";
    for (let r = 0; r < h; r += 16) { const y = M.top + (r + 0.5) * g.zoom; ctx.fillText(String(r), M.left - 5, y); ctx.fillRect(M.left - 3, y, 3, 1); }
    ctx.save(); ctx.translate(9, M.top + g.H / 2); ctx.rotate(-Math.PI / 2); ctx.textAlign = "center"; ctx.fillText("row", 0, 0); ctx.restore();
  }
  function colourBar(ctx, g, colour, ticks) {  // colour(t) for t in [0, 1] bottom to top; ticks [[t, text]]
    const x = M.left + g.W + M.gap;
    for (let y = 0; y < g.H; y++) { const c = colour(1 - y / (g.H - 1)); ctx.fillStyle = `rgb(${c[0]},${c[1]},${c[2]})`; ctx.fillRect(x, M.top + y, M.bar, 1.5); }
    ctx.strokeStyle = "#222"; ctx.strokeRect(x - 0.5, M.top - 0.5, M.bar + 1, g.H + 1);
    ctx.fillStyle = "#222"; ctx.font = "10px sans-serif"; ctx.textAlign = "left"; ctx.textBaseline = "middle";
    ticks.forEach(([t, text]) => {
      const y = M.top + (1 - t) * g.H;
      ctx.fillRect(x + M.bar, y, 3, 1);
      ctx.textBaseline = t > 0.97 ? "top" : t < 0.03 ? "bottom" : "middle";  // the end labels stay inside
      ctx.fillText(text, x + M.bar + 5, y);
    });
  }
  function outline(ctx, g, w, mask) {  // the boundary of a set of LR positions
    if (!mask) return;
    ctx.strokeStyle = "#00dd00"; ctx.lineWidth = 1.5; ctx.beginPath();
    const on = (r, c) => r >= 0 && c >= 0 && c < w && r < mask.length / w && mask[r * w + c];
    for (let j = 0; j < mask.length; j++) {
      if (!mask[j]) continue;
      const r = Math.floor(j / w), c = j % w, x = M.left + c * g.zoom, y = M.top + r * g.zoom, z = g.zoom;
      if (!on(r - 1, c)) { ctx.moveTo(x, y); ctx.lineTo(x + z, y); }
      if (!on(r + 1, c)) { ctx.moveTo(x, y + z); ctx.lineTo(x + z, y + z); }
      if (!on(r, c - 1)) { ctx.moveTo(x, y); ctx.lineTo(x, y + z); }
      if (!on(r, c + 1)) { ctx.moveTo(x + z, y); ctx.lineTo(x + z, y + z); }
    }
    ctx.stroke();
  }
  function markQuery(ctx, g, q) {  // a red square inside a white ring, at least 9 px across
    const z = Math.max(g.zoom, 5), cx = M.left + (q[1] + 0.5) * g.zoom, cy = M.top + (q[0] + 0.5) * g.zoom;
    ctx.lineWidth = 3; ctx.strokeStyle = "white"; ctx.strokeRect(cx - z / 2 - 2, cy - z / 2 - 2, z + 4, z + 4);
    ctx.lineWidth = 1.5; ctx.strokeStyle = "#d00"; ctx.strokeRect(cx - z / 2 - 2, cy - z / 2 - 2, z + 4, z + 4);
  }
  function logTicks(lo, hi) {
    const step = hi - lo > 3 ? 1 : hi - lo > 1.2 ? 0.5 : hi - lo > 0.5 ? 0.2 : 0.1, out = [];
    for (let v = Math.ceil(lo / step - 1e-9) * step; v <= hi + 1e-9; v += step) out.push([(v - lo) / (hi - lo), v.toFixed(step < 1 ? 1 : 0)]);
    return out;
  }

  // ------------------------------------------------------------------------------------------ update
  let pending = Promise.resolve();
  async function update(started) {
    const im = images[S.image], { h, w } = im, n = h * w, mod = moduleOf(), c = mod.c, e = effective();
    const i = S.query[0] * w + S.query[1];
    const { uq, uk } = await units(S.image, S.model, S.module);
    await im.ready;
    // φ(K) depends on the module, k and F only: kept while the query moves
    const feats = features(S.model, S.module, e);
    const phiKey = [S.image, S.model, S.module, e.k, feats.key].join("|");
    if (!phiKCache.has(phiKey)) {
      phiKCache.clear();
      phiKCache.set(phiKey, shiftedFeatures(exponents(uk, Array.from({ length: n }, (_, j) => j), c, feats.F, e.m, e.k), mod.feature_eps));
    }
    const phiQ = shiftedFeatures(exponents(uq, [i], c, feats.F, e.m, e.k), mod.feature_eps);
    const exact = exactMap(uq, uk, i, c, n, e.k), estimate = estimateMap(phiQ, phiKCache.get(phiKey), n, e.m);
    const repeats = trueRepeats(im.labels, i);
    const numbers = mapNumbers(exact, estimate, repeats);
    draw(im, exact, estimate, repeats);
    showKnobs(e);
    showNumbers(numbers);
    const ms = performance.now() - started;
    status.textContent = `query (row ${S.query[0]}, column ${S.query[1]}) of ${S.image}, module ${S.module} of ${S.model}; `
      + `k = ${e.k}, m = ${e.m}, features: ${e.own ? "the module's trained F" : `fresh draw #${e.seed} (${e.orthogonal ? "orthogonal blocks" : "i.i.d."}, this page's generator)`}; `
      + `computed and drawn in ${ms.toFixed(1)} ms`;
    window.ENLCN_LAST = {
      image: S.image, model: S.model, module: S.module, query: S.query.slice(),
      knobs: { k: S.k, m: S.m, seed: S.seed, orthogonal: S.orthogonal }, effective: e,
      exact: Array.from(exact), estimate: Array.from(estimate), numbers: numbers, ms: ms,
      geometry: { left: M.left, top: M.top, zoom: geometry(im.h, im.w).zoom },  // where a click lands
    };
    root.dataset.drawn = "1";
  }
  function draw(im, exact, estimate, repeats) {
    const { h, w } = im, g = geometry(h, w), n = h * w;
    let ctx = setupCanvas(cImage, g);
    ctx.drawImage(im.rgb, M.left, M.top, g.W, g.H);
    axes(ctx, g, h, w); outline(ctx, g, w, repeats); markQuery(ctx, g, S.query);
    // exact and estimate share one log10 scale, so their colours compare
    let hi = -Infinity, lo = Infinity;
    for (let j = 0; j < n; j++) for (const v of [exact[j], estimate[j]]) { const l = Math.log10(Math.max(v, 1e-300)); hi = Math.max(hi, l); lo = Math.min(lo, l); }
    lo = Math.max(lo, hi - DECADES); if (hi - lo < 1e-6) lo = hi - 1e-6;
    const ticks = logTicks(lo, hi);
    for (const [canvas, map] of [[cExact, exact], [cEst, estimate]]) {
      ctx = setupCanvas(canvas, g);
      heat(ctx, g, h, w, (j) => magma((Math.log10(Math.max(map[j], 1e-300)) - lo) / (hi - lo)));
      axes(ctx, g, h, w); colourBar(ctx, g, magma, ticks); outline(ctx, g, w, repeats); markQuery(ctx, g, S.query);
    }
    let lim = 0; for (let j = 0; j < n; j++) lim = Math.max(lim, Math.abs(estimate[j] - exact[j]));
    lim = lim || 1e-12;
    ctx = setupCanvas(cDiff, g);
    heat(ctx, g, h, w, (j) => rdbu((estimate[j] - exact[j]) / lim));
    axes(ctx, g, h, w);
    colourBar(ctx, g, (t) => rdbu(2 * t - 1), [[0, fmt(-lim)], [0.5, "0"], [1, fmt(lim)]]);
    outline(ctx, g, w, repeats); markQuery(ctx, g, S.query);
  }
  function showKnobs(e) {
    const mod = moduleOf();
    kInput.value = e.k; mInput.value = Math.max(0, M_CHOICES.indexOf(e.m));
    kText.textContent = `k = ${e.k}` + (S.k === null ? " (module's own)" : ` (module's own: ${mod.k})`);
    mText.textContent = `m = ${e.m}` + (S.m === null ? " (module's own)" : ` (module's own: ${mod.m})`);
    cOrtho.checked = e.orthogonal;
  }
  const ROWS = [["entropy (nats)", "entropy"], ["effective positions 1/Σw²", "effective positions"],
    ["mass on the top 2 % of positions", "top 2% mass"], ["mass on the true repeats", "mass on repeats"],
    ["precision of the top |repeats| positions", "precision on repeats"]];
  function showNumbers(numbers) {
    table.innerHTML = "";
    const head = el("tr", {}, el("thead", {}, table));
    ["", "exact", "estimate"].forEach((t) => el("th", { text: t }, head));
    const body = el("tbody", {}, table);
    for (const [label, key] of ROWS) {
      if (!(("exact " + key) in numbers)) continue;
      const r = el("tr", {}, body);
      el("td", { text: label }, r);
      ["exact", "estimate"].forEach((m) => el("td", { text: numbers[m + " " + key].toPrecision(4), "data-key": m + " " + key }, r));
    }
    for (const key of ["TV(estimate, exact)", "uniform mass on repeats"]) {
      if (!(key in numbers)) continue;
      const r = el("tr", {}, body);
      el("td", { text: key === "TV(estimate, exact)" ? "TV(estimate, exact): total-variation distance" : "uniform attention's mass on the repeats" }, r);
      el("td", { text: numbers[key].toPrecision(4), colspan: "2", "data-key": key }, r);
    }
  }
  function refresh() {  // one update at a time, in order; timed from the event that asked for it
    const started = performance.now();
    pending = pending.then(() => update(started)).catch((err) => { status.textContent = "explorer error: " + err; throw err; });
    return pending;
  }

  // ------------------------------------------------------------------------------------------ events
  function clickAt(canvas, ev) {
    const im = images[S.image], g = geometry(im.h, im.w), rect = canvas.getBoundingClientRect();
    const col = Math.floor((ev.clientX - rect.left - M.left) / g.zoom), row = Math.floor((ev.clientY - rect.top - M.top) / g.zoom);
    if (row < 0 || col < 0 || row >= im.h || col >= im.w) return;
    S.query = [row, col];
    refresh();
  }
  [cImage, cExact, cEst, cDiff].forEach((cv) => { cv.style.cursor = "crosshair"; cv.addEventListener("click", (ev) => clickAt(cv, ev)); });
  function fillModules() {
    fill(sModule, D.models[S.model].map((_, j) => [String(j), "module " + j + " of " + D.models[S.model].length]));
    if (S.module >= D.models[S.model].length) S.module = 0;
    sModule.value = String(S.module);
  }
  sImage.addEventListener("change", () => { S.image = sImage.value; S.query = defaultQuery(S.image); refresh(); });
  sModel.addEventListener("change", () => { S.model = sModel.value; fillModules(); refresh(); });
  sModule.addEventListener("change", () => { S.module = Number(sModule.value); refresh(); });
  kInput.addEventListener("input", () => { S.k = Number(kInput.value); refresh(); });
  mInput.addEventListener("input", () => {
    const m = M_CHOICES[Number(mInput.value)];
    S.m = m === moduleOf().m && S.seed === null ? null : m;  // back at its own m with its own F: the module's own
    refresh();
  });
  bRedraw.addEventListener("click", () => { S.seed = S.seed === null ? 1 : S.seed + 1; refresh(); });
  cOrtho.addEventListener("change", () => { S.orthogonal = cOrtho.checked; refresh(); });
  bOwn.addEventListener("click", () => { Object.assign(S, { k: null, m: null, seed: null, orthogonal: null }); refresh(); });
  fillModules();
  root.dataset.ready = "1";
  // after the first maps, decode every image's and model's codes in the background, so that choosing
  // another one later costs no decoding
  refresh().then(() => Object.keys(D.images).forEach((im) => Object.keys(D.models).forEach((m) => codesOf(im, m))));
})();
