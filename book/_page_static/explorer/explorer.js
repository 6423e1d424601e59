// The book's offline correlation-map explorer. Reads window.ENLCN_EXPLORER (explorer-data.js, written by
// enlcn.study.explorer from the trained models) and draws, for the clicked query: the exact softmax map,
// ENLA's estimate and their difference, with the numbers. No network, no kernel, no dependencies.
(function () {
  "use strict";
  const D = window.ENLCN_EXPLORER;
  const root = document.getElementById("enlcn-explorer");
  if (!root) return;
  if (!D) { root.textContent = "explorer data missing (book/_static/explorer/explorer-data.js)"; return; }
  const ZOOM = 4;
  // magma, 16 anchors (matplotlib), interpolated to 256
  const MAGMA = [[0,0,4],[12,8,38],[35,15,81],[63,15,114],[89,21,126],[114,31,129],[140,41,129],
    [166,49,125],[193,58,117],[218,70,104],[239,90,90],[250,119,82],[254,150,99],[254,182,122],
    [253,214,150],[252,253,191]];
  function magma(t) {
    const x = Math.max(0, Math.min(1, t)) * (MAGMA.length - 1), i = Math.min(Math.floor(x), MAGMA.length - 2), f = x - i;
    return MAGMA[i].map((a, c) => Math.round(a + f * (MAGMA[i + 1][c] - a)));
  }
  function rdbu(t) {  // t in [-1, 1]: blue (negative), white, red (positive)
    const a = Math.min(1, Math.abs(t));
    return t < 0 ? [Math.round(255 * (1 - a) + 33 * a), Math.round(255 * (1 - a) + 102 * a), Math.round(255 * (1 - a) + 172 * a)]
                 : [Math.round(255 * (1 - a) + 178 * a), Math.round(255 * (1 - a) + 24 * a), Math.round(255 * (1 - a) + 43 * a)];
  }
  function el(tag, attrs, parent) {
    const e = document.createElement(tag);
    Object.entries(attrs || {}).forEach(([k, v]) => (k === "text" ? (e.textContent = v) : e.setAttribute(k, v)));
    if (parent) parent.appendChild(e);
    return e;
  }
  function decode(enc) {  // → Promise of Float64Array of weights (row-major)
    return new Promise((resolve) => {
      const img = new Image();
      img.onload = () => {
        const c = document.createElement("canvas");
        c.width = img.width; c.height = img.height;
        const ctx = c.getContext("2d");
        ctx.drawImage(img, 0, 0);
        const px = ctx.getImageData(0, 0, img.width, img.height).data, n = img.width * img.height;
        const out = new Float64Array(n), L = enc.levels - 1;
        for (let i = 0; i < n; i++) out[i] = Math.pow(10, enc.lo + (px[4 * i] / L) * (enc.hi - enc.lo));
        resolve(out);
      };
      img.src = "data:image/png;base64," + enc.png;
    });
  }
  function paint(canvas, h, w, color) {
    canvas.width = w * ZOOM; canvas.height = h * ZOOM;
    const ctx = canvas.getContext("2d"), img = ctx.createImageData(w, h);
    for (let i = 0; i < h * w; i++) { const c = color(i); img.data.set([c[0], c[1], c[2], 255], 4 * i); }
    const tmp = document.createElement("canvas"); tmp.width = w; tmp.height = h;
    tmp.getContext("2d").putImageData(img, 0, 0);
    ctx.imageSmoothingEnabled = false;
    ctx.drawImage(tmp, 0, 0, w * ZOOM, h * ZOOM);
    return ctx;
  }
  function mark(ctx, q, colour) {
    ctx.strokeStyle = colour; ctx.lineWidth = 2;
    ctx.strokeRect(q[1] * ZOOM - 1, q[0] * ZOOM - 1, ZOOM + 2, ZOOM + 2);
  }

  const bar = el("div", { class: "enlcn-explorer-controls" }, root);
  const pick = (label, options) => {
    const lab = el("label", { text: label + " " }, bar), s = el("select", {}, lab);
    options.forEach(([v, t]) => el("option", { value: v, text: t }, s));
    return s;
  };
  const sImage = pick("image", Object.keys(D.images).map((k) => [k, k]));
  const sModel = pick("model", D.models.map((m) => [m, m]));
  const sView = pick("module", [0, 1, 2, 3, 4].map((m) => [String(m), "module " + m])
    .concat(D.ks.map((k) => ["k=" + k, "module 2, estimate with k = " + k])));
  const panes = el("div", { class: "enlcn-explorer-panes", style: "display:flex;flex-wrap:wrap;gap:12px;margin-top:8px" }, root);
  const pane = (title) => { const d = el("div", {}, panes); el("div", { text: title, style: "font-size:0.8em" }, d); return el("canvas", {}, d); };
  const cImage = pane("LR image: click to choose the query (grid points); yellow: its true repeats");
  const cExact = pane("softmax(QᵢᵀK) (log10)"), cEst = pane("ENLA estimate (log10)"), cDiff = pane("estimate − exact");
  const table = el("table", { class: "enlcn-explorer-numbers", style: "font-size:0.8em;margin-top:8px" }, root);
  let query = 0;

  function state() {
    const im = D.images[sImage.value], view = sView.value;
    const model = view.startsWith("k=") ? D.models[D.models.length - 1] : sModel.value;
    if (view.startsWith("k=")) sModel.value = model;
    return im.states[model + "|" + view + "|" + query];
  }
  async function draw() {
    const im = D.images[sImage.value], [h, w] = im.shape, q = im.queries[query];
    const rgb = await new Promise((res) => { const i = new Image(); i.onload = () => res(i); i.src = "data:image/png;base64," + im.lr; });
    cImage.width = w * ZOOM; cImage.height = h * ZOOM;
    const ctx = cImage.getContext("2d"); ctx.imageSmoothingEnabled = false;
    ctx.drawImage(rgb, 0, 0, w * ZOOM, h * ZOOM);
    im.queries.forEach((p) => { ctx.fillStyle = "rgba(0,255,255,0.8)"; ctx.fillRect(p[1] * ZOOM + 1, p[0] * ZOOM + 1, ZOOM - 2, ZOOM - 2); });
    (im.repeats ? im.repeats[String(query)] : []).forEach((p) => mark(ctx, p, "yellow"));
    mark(ctx, q, "red");
    const st = state();
    table.innerHTML = "";
    if (!st) { el("tr", {}, table).textContent = "no precomputed state"; return; }
    const exact = await decode(st.exact), est = st.estimate ? await decode(st.estimate) : null;
    const logScale = (v, enc) => (Math.log10(v) - enc.lo) / Math.max(enc.hi - enc.lo, 1e-12);
    mark(paint(cExact, h, w, (i) => magma(logScale(exact[i], st.exact))), q, "cyan");
    if (est) {
      mark(paint(cEst, h, w, (i) => magma(logScale(est[i], st.estimate))), q, "cyan");
      let lim = 0; for (let i = 0; i < h * w; i++) lim = Math.max(lim, Math.abs(est[i] - exact[i]));
      paint(cDiff, h, w, (i) => rdbu((est[i] - exact[i]) / (lim || 1)));
    }
    Object.entries(st.numbers).forEach(([k, v]) => { const r = el("tr", {}, table); el("td", { text: k }, r); el("td", { text: String(v) }, r); });
  }
  cImage.addEventListener("click", (ev) => {
    const r = cImage.getBoundingClientRect(), im = D.images[sImage.value];
    const y = (ev.clientY - r.top) * (cImage.height / r.height) / ZOOM, x = (ev.clientX - r.left) * (cImage.width / r.width) / ZOOM;
    let best = 0, bd = Infinity;
    im.queries.forEach((p, i) => { const d = (p[0] - y) ** 2 + (p[1] - x) ** 2; if (d < bd) { bd = d; best = i; } });
    query = best; draw();
  });
  [sImage, sModel, sView].forEach((s) => s.addEventListener("change", () => { if (s === sImage) query = 0; draw(); }));
  root.dataset.ready = "1";
  draw().then(() => { root.dataset.drawn = "1"; });
})();
