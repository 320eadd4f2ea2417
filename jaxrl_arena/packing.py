"""Few wide arrays instead of many narrow ones: pytree leaves stacked by shape and kind.

Inside compiled loops every array written per iteration (a scan's stacked outputs, a gather of
minibatch rows) is a kernel launch per iteration on GPUs; at small batch sizes those launches,
not the bytes, set the speed. Packing the leaves that share a shape into one array turns
``k`` launches into one.
"""

from __future__ import annotations

import jax
import jax.numpy as jnp


def pack_leaves(tree, max_rank: int = 2):
    """``(groups, unpack)``: the leaves of ``tree`` of rank up to ``max_rank`` that share a shape
    and kind stacked on a new last axis (bools and signed integers of up to 32 bits travel as
    int32), and the inverse. Leaves of higher rank (observations) and leaves alone in their
    group stay as they are: stacking those would interleave their elements. ``unpack(groups)``
    also takes the groups with extra leading axes (a scan's stacked outputs) and restores every
    leaf's dtype."""
    leaves, treedef = jax.tree.flatten(tree)
    kinds: dict = {}
    for i, x in enumerate(leaves):
        dtype = jnp.dtype(x.dtype)
        if dtype == jnp.bool_ or (jnp.issubdtype(dtype, jnp.signedinteger) and dtype.itemsize <= 4):
            dtype = jnp.dtype(jnp.int32)
        group = (tuple(x.shape), dtype) if x.ndim <= max_rank else i
        kinds.setdefault(group, []).append(i)
    layout = [(members, leaves[members[0]].dtype if isinstance(group, int) else group[1])
              for group, members in kinds.items()]
    dtypes = [jnp.dtype(x.dtype) for x in leaves]
    groups = tuple(leaves[members[0]] if len(members) == 1
                   else jnp.stack([leaves[i].astype(dtype) for i in members], -1)
                   for members, dtype in layout)

    def unpack(packed):
        out = [None] * len(dtypes)
        for (members, _), group in zip(layout, packed):
            if len(members) == 1:
                out[members[0]] = group
                continue
            for j, i in enumerate(members):
                out[i] = group[..., j].astype(dtypes[i])
        return jax.tree.unflatten(treedef, out)

    return groups, unpack
