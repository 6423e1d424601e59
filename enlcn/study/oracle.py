"""A non-learned multi-copy oracle: how much the repeats of the self-similar test images are worth.

It is told what no network is told — where every copy of every motif lies (``SelfSimilar.placements``) —
and nothing else about the HR image. From the LR image alone it then

1. estimates the smooth background: the MATLAB-bicubic upsampling, with the copies (and a 2-pixel margin)
   filled in by normalized Gaussian convolution of the surrounding background (:func:`background`);
2. fits each copy's intensity change against the mean of its motif's copies: contrast ``a_c`` = the
   copy's LR standard deviation over the mean of its motif's, offset ``o_c`` per channel from the means
   (:func:`copy_intensities`; the generator applies one contrast and one brightness per copy);
3. solves the HR motif ``M`` (per channel) by ridge-regularised least squares from *all* copies' LR
   pixels through the linear MATLAB-bicubic degradation ``y = D_r X D_cᵀ``, each copy at its own
   sampling phase: ``min Σ_c ‖A_c (a_c M + o_c) B_cᵀ − (y_c − known_c)‖² + λ‖M − M̄‖²`` with ``A_c``,
   ``B_c`` the rows / columns of ``D_r``, ``D_c`` that see copy ``c``, ``known_c`` the background's
   share of those LR pixels and ``M̄`` the mean of the intensity-normalised bicubic copies
   (:func:`solve_motif`);
4. pastes ``a_c M + o_c`` into the background at every copy and rounds to uint8.

``λ`` is fixed at :data:`RIDGE` (not tuned on any result). The degradation is treated as linear (the
per-pass uint8 rounding of MATLAB's ``imresize`` is ignored). Averaging the copies' bicubic upsamplings
instead gains little: the gain comes from inverting the degradation with complementary phases — what a
network with non-local attention would have to learn.
"""

from __future__ import annotations

import numpy as np
from scipy import ndimage

from ..data.resize import contributions, imresize_matlab
from ..data.synthetic import SelfSimilar

RIDGE = 1e-3  # λ, on images in [0, 1]
MARGIN = 2  # HR pixels around each copy treated as unknown background
ROUNDS = 10  # alternations of motif and copy intensities (the first from LR statistics; converged by ~10)


def degradation_matrix(hr_len: int, scale: int) -> np.ndarray:
    """``D`` (``hr_len/scale × hr_len``): one axis of MATLAB ``imresize(·, 1/scale, 'bicubic')``, a matrix."""
    lr_len = hr_len // scale
    weights, idx = contributions(hr_len, lr_len, 1.0 / scale)
    d = np.zeros((lr_len, hr_len))
    for o in range(lr_len):
        np.add.at(d[o], idx[o], weights[o])
    return d


def copy_mask(item: SelfSimilar, margin: int = 0) -> np.ndarray:
    """Boolean HR mask of every copy, grown by ``margin`` pixels."""
    mask = item.motif_mask()
    return ndimage.binary_dilation(mask, iterations=margin) if margin else mask


def background(upsampled: np.ndarray, unknown: np.ndarray, sigma: float = 4.0) -> np.ndarray:
    """``upsampled`` (H×W×3 float) with the ``unknown`` pixels filled by normalized Gaussian convolution."""
    known = (~unknown).astype(np.float64)
    out = upsampled.copy()
    weight = ndimage.gaussian_filter(known, sigma)
    for ch in range(upsampled.shape[2]):
        filled = ndimage.gaussian_filter(upsampled[..., ch] * known, sigma) / np.maximum(weight, 1e-8)
        out[..., ch] = np.where(unknown, filled, upsampled[..., ch])
    return out


def copy_intensities(item: SelfSimilar, lr: np.ndarray, motif: int) -> tuple[np.ndarray, np.ndarray]:
    """Contrast ``a_c`` (per copy) and offset ``o_c`` (copy × channel) of ``motif``'s copies, from the LR
    pixels wholly inside each copy, relative to the mean over its copies."""
    q = item.motif_size // item.scale
    stats = []
    for p in (p for p in item.placements if p.motif == motif):
        cells = lr[p.lr_top + 1 : p.lr_top + q - 1, p.lr_left + 1 : p.lr_left + q - 1]  # interior cells
        stats.append((cells.std(), cells.reshape(-1, cells.shape[-1]).mean(axis=0)))
    sd = np.array([s for s, _ in stats])
    means = np.stack([m for _, m in stats])  # copies × channels
    a = sd / max(sd.mean(), 1e-8)
    offset = means - a[:, None] * means.mean(axis=0, keepdims=True)
    return a, offset


def copy_windows(item: SelfSimilar, motif: int, lr_shape: tuple[int, ...], d_rows: np.ndarray,
                 d_cols: np.ndarray):
    """Per copy of ``motif``: its LR window (2 pixels around the copy) and the rows / columns ``A_c``, ``B_c``
    of the degradation that map the copy's HR pixels into that window."""
    n, s = item.motif_size, item.scale
    out = []
    for p in (p for p in item.placements if p.motif == motif):
        r0, r1 = max(p.lr_top - 2, 0), min(p.lr_top + n // s + 2, lr_shape[0])
        c0, c1 = max(p.lr_left - 2, 0), min(p.lr_left + n // s + 2, lr_shape[1])
        window = (slice(r0, r1), slice(c0, c1))
        out.append((window, d_rows[r0:r1, p.top : p.top + n], d_cols[c0:c1, p.left : p.left + n]))
    return out


def solve_motif(
    targets: list[np.ndarray],
    windows: list,
    prior: np.ndarray,
    a: np.ndarray,
    offset: np.ndarray,
    ridge: float = RIDGE,
) -> np.ndarray:
    """The HR motif (``n×n×C``) by ridge least squares over all its copies, given their intensities.

    ``targets[c]`` is copy ``c``'s LR window minus the background's share (``h×w×C``); the model is
    ``target_c = A_c (a_c M + o_c) B_cᵀ`` per channel, ``vec(A M Bᵀ) = (B ⊗ A) vec(M)`` (column-major).
    """
    n, channels = prior.shape[0], prior.shape[2]
    lhs = ridge * np.eye(n * n)  # the same for every channel: one solve with C right-hand sides
    rhs = ridge * prior.reshape(n * n, channels, order="F")
    for c, (y, (_, a_rows, b_cols)) in enumerate(zip(targets, windows, strict=True)):
        k = a[c] * np.kron(b_cols, a_rows)
        flat = y - offset[c] * np.outer(a_rows.sum(1), b_cols.sum(1))[..., None]  # h×w×C
        lhs += k.T @ k
        rhs += k.T @ flat.reshape(-1, channels, order="F")
    return np.linalg.solve(lhs, rhs).reshape(n, n, channels, order="F")


def fit_intensities(targets: list[np.ndarray], windows: list, motif: np.ndarray):
    """Each copy's contrast ``a_c`` (all channels) and offsets ``o_c`` (per channel) by least squares,
    given the motif: ``target_c ≈ a_c·A_c M B_cᵀ + o_c·A_c 1 1ᵀ B_cᵀ``; contrasts normalised to mean 1."""
    channels = motif.shape[2]
    a, offset = np.empty(len(targets)), np.empty((len(targets), channels))
    for c, (y, (_, a_rows, b_cols)) in enumerate(zip(targets, windows, strict=True)):
        ones = np.outer(a_rows.sum(1), b_cols.sum(1)).reshape(-1)
        design = np.zeros((ones.size * channels, 1 + channels))
        for ch in range(channels):
            rows = slice(ch * ones.size, (ch + 1) * ones.size)
            design[rows, 0] = (a_rows @ motif[..., ch] @ b_cols.T).reshape(-1)
            design[rows, 1 + ch] = ones
        coef = np.linalg.lstsq(design, np.concatenate([y[..., ch].reshape(-1) for ch in range(channels)]))[0]
        a[c], offset[c] = coef[0], coef[1:]
    scale = a.mean()
    return a / scale, offset


def oracle_upscale(
    item: SelfSimilar, lr: np.ndarray, ridge: float = RIDGE, rounds: int = ROUNDS
) -> np.ndarray:
    """The oracle's uint8 HR estimate of ``item`` from its LR image ``lr`` (uint8)."""
    s, n = item.scale, item.motif_size
    y = lr.astype(np.float64) / 255
    up = imresize_matlab(y, s)  # float in, float out: no rounding
    h, w = up.shape[:2]
    bg = background(up, copy_mask(item, MARGIN))
    known = np.where(copy_mask(item)[..., None], 0.0, bg)  # the copies are the unknowns
    d_rows, d_cols = degradation_matrix(h, s), degradation_matrix(w, s)
    share = np.stack([d_rows @ known[..., ch] @ d_cols.T for ch in range(y.shape[2])], -1)
    out = bg.copy()
    for motif in sorted({p.motif for p in item.placements}):
        copies = [p for p in item.placements if p.motif == motif]
        windows = copy_windows(item, motif, y.shape, d_rows, d_cols)
        targets = [y[win] - share[win] for win, _, _ in windows]
        a, offset = copy_intensities(item, y, motif)
        prior = np.mean(
            [(up[p.top : p.top + n, p.left : p.left + n] - offset[c]) / a[c] for c, p in enumerate(copies)],
            axis=0,
        )
        m = solve_motif(targets, windows, prior, a, offset, ridge)
        for _ in range(rounds - 1):  # alternate: intensities given the motif, the motif given them
            a, offset = fit_intensities(targets, windows, m)
            m = solve_motif(targets, windows, prior, a, offset, ridge)
        for c, p in enumerate(copies):
            out[p.top : p.top + n, p.left : p.left + n] = a[c] * m + offset[c]
    return np.clip(np.floor(out * 255 + 0.5), 0, 255).astype(np.uint8)
