"""Per-task outcome rings, appended to inside the compiled update (fixed shapes, no loops)."""

from __future__ import annotations

import jax
import jax.numpy as jnp


def ring_append(buf: jax.Array, count: jax.Array, seg: jax.Array, values: jax.Array,
                seg_counts: jax.Array) -> jax.Array:
    """Append ``values[m]`` to ring ``buf[seg[m]]`` in row order; rows with ``seg == S`` skip.

    ``buf`` is ``[S, W]``, ``count[S]`` the appends so far (write position ``count % W``),
    ``seg_counts[S]`` the number of rows per segment. One stable sort gives each row its rank
    inside its segment; only each segment's last ``W`` rows are written (distinct positions).
    """
    S, W = buf.shape
    M = seg.shape[0]
    order = jnp.argsort(seg, stable=True)
    sseg = seg[order]
    counts_ext = jnp.concatenate([seg_counts, jnp.zeros(1, seg_counts.dtype)])
    starts = jnp.cumsum(counts_ext) - counts_ext
    rank = jnp.arange(M, dtype=jnp.int32) - starts[sseg].astype(jnp.int32)
    c = counts_ext[sseg]
    keep = (sseg < S) & (rank >= c - W)
    base = jnp.concatenate([count, jnp.zeros(1, count.dtype)])[sseg]
    pos = (base + rank) % W
    row = jnp.where(keep, sseg, S)  # out of bounds -> dropped
    return buf.at[row, pos].set(values[order], mode="drop")
