"""Non-Local Sparse Attention: NLSN's LSH-bucketed attention.

Definition followed: ``NonLocalSparseAttention`` of NLSN (Mei et al., CVPR 2021), ``src/model/attention.py``
(github HarukiYqM/Non-Local-Sparse-Attention). Per forward pass (at test time too) and per round of
``n_hashes``:

1. embeddings: ``q = conv_match(x)`` (k×k conv ``C → C/reduction``, bias, no activation) and
   ``v = conv_assembly(x)`` (1×1 conv ``C → C``, bias, no activation);
2. hashing: random rotations ``R ~ N(0, 1)^{C/r × n_hashes × B/2}`` drawn from the global torch RNG (one
   draw shared by the whole batch), ``hash = argmax([qR, −qR])`` plus a per-round offset;
3. chunking: positions sorted by hash, cut into chunks of ``chunk_size`` (the last chunk padded by
   repeating the tail of the sorted sequence);
4. attention: each chunk attends to itself and its previous and next chunk (wrap-around) with keys
   ``F.normalize(q, eps=5e-5)`` and unnormalized queries, softmax via logsumexp; the rounds are mixed by a
   softmax over their logsumexps;
5. output: ``ret · res_scale + x``.

Where we differ from the NLSN code (the result is otherwise the same):

* ``B = min(L//chunk + (L//chunk) % 2, 128)`` is clamped to at least 2: NLSN gets ``B = 0`` and crashes for
  ``L < chunk_size``. Its tail padding also fails when the padding exceeds ``L``; we repeat the sorted
  sequence cyclically, which is NLSN's padding whenever NLSN's works.
* The sort by hash is stable (ties in position order); NLSN's ``sort`` leaves the order of ties
  unspecified, so its chunks (and outputs) can depend on the backend.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from typing import NamedTuple

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from .base import Attention, feature_map, tokens
from .blocked import window_attention
from .nla import BLOCKED_ENV, check_finite, check_positive_int, embedding_channels

#: NLSN's cap on the number of hash buckets
MAX_BUCKETS = 128
#: ``eps`` of NLSN's key normalization
KEY_NORM_EPS = 5e-5


@dataclass(frozen=True)
class NLSAOptions:
    """Options of kind ``nlsa`` (NLSN's defaults; ``match_kernel`` is the size of ``conv_match``)."""

    n_hashes: int = 4
    chunk_size: int = 144
    reduction: int = 4
    match_kernel: int = 3
    res_scale: float = 1.0


class ChunkLayout(NamedTuple):
    """Where every position goes in the sorted, chunked sequence of each hash round."""

    positions: Tensor  # [B, h, K, S] long: the position (0..L-1) held by each slot of each chunk
    slot_of: Tensor  # [B, h, L] long: the (unpadded) slot of each position in the sorted sequence


class NonLocalSparseAttention(Attention):
    """NLSN's non-local sparse attention (LSH buckets, chunked softmax, ``n_hashes`` rounds)."""

    Options = NLSAOptions

    def __init__(self, channels: int, options: NLSAOptions) -> None:
        super().__init__(channels, options)
        check_positive_int("n_hashes", options.n_hashes)
        check_positive_int("chunk_size", options.chunk_size)
        check_positive_int("match_kernel", options.match_kernel)
        if options.match_kernel % 2 == 0:
            raise ValueError(f"match_kernel must be odd to keep H×W, got match_kernel={options.match_kernel}")
        check_finite("res_scale", options.res_scale)
        inner = embedding_channels(channels, options.reduction)
        k = options.match_kernel
        self.conv_match = nn.Conv2d(channels, inner, k, padding=k // 2)
        self.conv_assembly = nn.Conv2d(channels, channels, 1)

    def layout(self, q: Tensor) -> ChunkLayout:
        """Draw one set of rotations from the global RNG, hash the queries ``[B, L, c]`` and chunk them."""
        n_buckets = bucket_count(q.shape[1], self.options.chunk_size)
        rotations = torch.randn(  # [c, h, B/2], the same for every image of the batch (as in NLSN)
            q.shape[-1], self.options.n_hashes, n_buckets // 2, dtype=q.dtype, device=q.device
        )
        codes = lsh_codes(q.detach(), rotations)  # [B, h, L]
        return sort_into_chunks(codes, self.options.chunk_size)

    def forward(self, x: Tensor) -> Tensor:
        self.check_input(x)
        q = tokens(self.conv_match(x))  # [B, L, c]
        v = tokens(self.conv_assembly(x))  # [B, L, C]
        lay = self.layout(q)
        q_chunks = gather_tokens(q, lay.positions)  # [B, h, K, S, c]
        k_chunks = normalized_keys(q_chunks)  # per token, so the same as gathering normalized keys
        v_chunks = gather_tokens(v, lay.positions)  # [B, h, K, S, C]
        if self.blocked_path(x):  # each chunk with its two neighbours, a few chunks at a time (.blocked)
            ret, lse = window_attention(*(t.flatten(0, 1) for t in (q_chunks, k_chunks, v_chunks)))
        else:
            k_chunks, v_chunks = with_neighbours(k_chunks), with_neighbours(v_chunks)  # [B, h, K, 3S, ·]
            logits = torch.einsum("bhkic,bhkjc->bhkij", q_chunks, k_chunks)  # [B, h, K, S, 3S]
            lse = torch.logsumexp(logits, dim=-1)  # [B, h, K, S]
            ret = torch.einsum("bhkij,bhkjc->bhkic", torch.exp(logits - lse[..., None]), v_chunks)
        # back from sorted slots to positions (dropping the padded slots): [B, h, L, C] and [B, h, L]
        batch, n_hashes, length = lay.slot_of.shape
        slots = lay.slot_of.flatten(0, 1)  # [B·h, L]
        ret = gather_tokens(ret.reshape(batch * n_hashes, -1, ret.shape[-1]), slots)
        ret = ret.view(batch, n_hashes, length, -1)
        lse = lse.reshape(batch, n_hashes, -1).gather(2, lay.slot_of)
        round_weights = torch.softmax(lse, dim=1)  # [B, h, L]
        out = (ret * round_weights[..., None]).sum(dim=1)  # [B, L, C]
        return feature_map(out, x.shape[-2], x.shape[-1]) * self.options.res_scale + x

    def blocked_path(self, x: Tensor) -> bool:
        """True when ``forward`` takes :func:`~enlcn.attention.blocked.window_attention` (float32 CPU input,
        ``ENLCN_BLOCKED`` not ``0``); CUDA keeps the batched einsums."""
        cpu32 = x.device.type == "cpu" and x.dtype == torch.float32
        return cpu32 and os.environ.get(BLOCKED_ENV, "1") != "0"

    def training_path(self, x: Tensor) -> str:
        if not self.blocked_path(x):
            return "einsum + autograd"
        from .native import attention_status

        return f"chunked windows (enlcn.attention.blocked): {attention_status()}"

    def attention_weights(self, x: Tensor, index: int) -> Tensor:
        """Normalized weights ``[B, L]`` of query ``index`` for ONE draw of the rotations (global RNG).

        With the same RNG state, ``forward(x)`` at ``index`` equals ``x_index + res_scale · Σ_j w_j v_j``.
        A key met several times (in two of the three chunks, through padding, or in several rounds)
        accumulates its weights.
        """
        self.check_input(x)
        index = self.check_index(x, index)
        q = tokens(self.conv_match(x))  # [B, L, c]
        lay = self.layout(q)
        batch, n_hashes = q.shape[0], self.options.n_hashes
        chunk = torch.div(lay.slot_of[:, :, index], self.options.chunk_size, rounding_mode="floor")  # [B, h]
        windows = with_neighbours(lay.positions[..., None])[..., 0]  # [B, h, K, 3S]: keys seen by each chunk
        image = torch.arange(batch, device=x.device)[:, None]  # [B, 1]
        round_ = torch.arange(n_hashes, device=x.device)  # [h]
        key_positions = windows[image, round_, chunk]  # [B, h, 3S]: keys seen by query `index`
        keys = gather_tokens(normalized_keys(q), key_positions)  # [B, h, 3S, c]
        logits = torch.einsum("bhjc,bc->bhj", keys, q[:, index])  # [B, h, 3S]
        lse = torch.logsumexp(logits, dim=-1, keepdim=True)  # [B, h, 1]
        round_weights = torch.softmax(lse, dim=1)  # [B, h, 1]
        weights = torch.exp(logits - lse) * round_weights  # [B, h, 3S]
        out = torch.zeros(batch, q.shape[1], dtype=weights.dtype, device=weights.device)
        return out.scatter_add_(1, key_positions.flatten(1), weights.flatten(1))  # [B, L]


def bucket_count(length: int, chunk_size: int) -> int:
    """NLSN's number of hash buckets, ``min(n + n % 2, 128)`` with ``n = L // chunk``, but at least 2."""
    n = length // chunk_size
    return max(min(n + n % 2, MAX_BUCKETS), 2)


def lsh_codes(q: Tensor, rotations: Tensor) -> Tensor:
    """Hash codes ``[B, h, L]`` of queries ``[B, L, c]`` under rotations ``[c, h, B/2]``, offset by round.

    ``argmax([qR, −qR])`` (angular LSH); round ``r`` adds ``r · B`` so rounds never share a bucket.
    """
    rotated = torch.einsum("blc,chi->bhli", q, rotations)  # [B, h, L, B/2]
    codes = torch.cat([rotated, -rotated], dim=-1).argmax(dim=-1)  # [B, h, L]
    n_hashes, n_buckets = rotations.shape[1], 2 * rotations.shape[2]
    offsets = torch.arange(n_hashes, device=q.device) * n_buckets  # [h]
    return codes + offsets[:, None]


def sort_into_chunks(codes: Tensor, chunk_size: int) -> ChunkLayout:
    """Stable-sort the positions by hash code ``[B, h, L]`` and cut each round into chunks of ``chunk_size``.

    All rounds are sorted in one sequence as in NLSN; the offsets keep round ``r`` in slots
    ``r·L … (r+1)·L − 1``. A round whose length is not a multiple of ``chunk_size`` is padded by repeating
    the last ``padding`` slots of its sorted sequence (NLSN), cyclically when ``padding > L``.
    """
    batch, n_hashes, length = codes.shape
    order = codes.flatten(1).sort(dim=-1, stable=True).indices  # [B, h·L], flat index r·L + position
    order = order.view(batch, n_hashes, length) % length  # [B, h, L]: position at each sorted slot
    padding = -length % chunk_size
    slots = torch.arange(length + padding, device=codes.device)  # [K·S]: padded slot → sorted slot
    slots = torch.where(slots < length, slots, (slots - padding) % length)
    positions = order[:, :, slots].view(batch, n_hashes, -1, chunk_size)  # [B, h, K, S]
    ranks = torch.arange(length, device=codes.device).expand_as(order)
    slot_of = torch.empty_like(order).scatter_(2, order, ranks)  # [B, h, L]: inverse permutation
    return ChunkLayout(positions, slot_of)


def gather_tokens(t: Tensor, positions: Tensor) -> Tensor:
    """Tokens ``[B, L, C]`` picked at ``positions`` ``[B, *idx]`` → ``[B, *idx, C]``."""
    batch, length = t.shape[:2]
    offsets = torch.arange(batch, device=t.device)[:, None] * length  # [B, 1]: image b's first row
    rows = (positions.reshape(batch, -1) + offsets).flatten()  # [B·M] rows of t flattened to [B·L, C]
    # index_select (backward: index_add) is several times faster than gather / scatter_add on CPU
    return t.reshape(batch * length, -1).index_select(0, rows).view(*positions.shape, t.shape[-1])


def with_neighbours(chunks: Tensor) -> Tensor:
    """``[B, h, K, S, C]`` → ``[B, h, K, 3S, C]``: each chunk, then the previous, then the next (wrapping)."""
    previous = chunks.roll(1, dims=2)
    following = chunks.roll(-1, dims=2)
    return torch.cat([chunks, previous, following], dim=3)


def normalized_keys(q: Tensor) -> Tensor:
    """NLSN's keys: the query embeddings ``[B, L, c]`` L2-normalized (``eps = 5e-5``)."""
    return F.normalize(q, p=2, dim=-1, eps=KEY_NORM_EPS)
