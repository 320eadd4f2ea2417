"""Re-simulate golden per-tick trajectories and compare every recorded field.

    python -m tools.npp_trajectory [FILE.npz | FOLDER ...] [--float32] [--tol 1e-9]   # none: the golden ones

Each file's map bytes and inputs are replayed (with its recorded auto-resets) in float64; every
recorded ninja and entity field is compared per tick (floats within ``--tol``, integers exactly).
Prints the first divergence (file, tick, field, expected, got); exits 0 only if all files match.
"""

from __future__ import annotations

import os

# Bit-exact float64 needs plain IEEE multiply-then-add: XLA:CPU otherwise fuses a*b+c into FMA
# (results then differ from nclone by ~1e-13). Capping the ISA below AVX2 disables FMA. This only
# takes effect when set before JAX creates its CPU backend, so only the CLI sets it (importing this
# module, e.g. from tests, leaves the process-wide flags alone).
if __name__ == "__main__" and "xla_cpu_max_isa" not in os.environ.get("XLA_FLAGS", ""):
    os.environ["XLA_FLAGS"] = (os.environ.get("XLA_FLAGS", "") + " --xla_cpu_max_isa=AVX").strip()

import argparse
import sys

import jax.numpy as jnp  # noqa: E402
import numpy as np  # noqa: E402

from envs.npp.golden import expand_inputs, npp_golden_dir, simulate, x64_scope  # noqa: E402

NINJA_FIELDS = ("x", "y", "vx", "vy", "x_old", "y_old", "vx_old", "vy_old", "floor_nx", "floor_ny", "ceil_nx",
                "ceil_ny", "floor_sum_x", "floor_sum_y", "ceil_sum_x", "ceil_sum_y", "wall_normal",
                "applied_gravity", "applied_drag", "x_crush", "y_crush", "crush_len", "lp_boost_x", "lp_boost_y",
                "state", "airborn", "airborn_old", "walled", "floor_count", "ceiling_count", "jump_buffer",
                "floor_buffer", "wall_buffer", "launch_pad_buffer", "jump_duration", "jump_input_old",
                "is_crushable", "doors_opened", "gold_collected", "frame", "jump_event")
ENTITY_FIELDS = ("ent_xy", "ent_v", "ent_active", "ent_state", "ent_aux")


def simulate_file(path, dtype=jnp.float64):
    z = np.load(path)
    out = simulate(z["map_bytes"].tobytes(), z["hor"], z["jump"], z["reset_after"][1:] != 0, dtype=dtype,
                   require_exit=False)
    return z, out


def compare(z, out, tol=1e-9):
    """Return (first_tick, field, expected, got, max_abs_err_over_float_fields) or None-tick if equal."""
    T1 = len(z["x"])
    E = len(z["ent_type"])
    first = None
    max_err = 0.0
    for f in NINJA_FIELDS + ENTITY_FIELDS:
        exp = np.asarray(z[f])
        got = np.asarray(out[f])
        if f.startswith("ent_"):
            got = got[:, :E]
        got = got.astype(np.float64) if exp.dtype.kind == "f" else got.astype(np.int64)
        exp = exp.astype(np.float64) if exp.dtype.kind == "f" else exp.astype(np.int64)
        if exp.dtype.kind == "f":
            err = np.abs(exp - got)
            bad = ~(err <= tol)
            finite = np.isfinite(err)
            if finite.any():
                max_err = max(max_err, float(err[finite].max()))
        else:
            bad = exp != got
        if bad.any():
            rows = np.nonzero(bad.reshape(T1, -1).any(1))[0]
            t = int(rows[0])
            if first is None or t < first[0]:
                idx = np.nonzero(bad[t].reshape(-1))[0][0] if bad[t].ndim else None
                e_v = exp[t].reshape(-1)[idx] if idx is not None else exp[t]
                g_v = got[t].reshape(-1)[idx] if idx is not None else got[t]
                where = f"{f}[{np.unravel_index(idx, bad[t].shape)}]" if idx is not None else f
                first = (t, where, e_v, g_v)
    return first, max_err


def drift_summary(z, out):
    """How far a (float32) run drifts from the float64 reference."""
    err = np.hypot(out["x"].astype(np.float64) - z["x"], out["y"].astype(np.float64) - z["y"])
    first = lambda m: int(np.argmax(m)) if m.any() else None
    return (f"pos err max {err.max():.3g} px, first tick >1e-3 px {first(err > 1e-3)}, >1 px {first(err > 1)}, "
            f"first state mismatch {first(out['state'] != z['state'])}")


def main(argv=None) -> int:
    with x64_scope():   # scoped: importing or calling this never flips the global flag
        return _main(argv)


def _main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("files", nargs="*", help="trajectory .npz files or folders (default: the golden ones)")
    p.add_argument("--tol", type=float, default=1e-9)
    p.add_argument("--float32", action="store_true", help="simulate in float32 and report the drift")
    args = p.parse_args(argv)
    dtype = jnp.float32 if args.float32 else jnp.float64
    files, errors = expand_inputs(args.files, ".npz", npp_golden_dir() / "trajectories")
    for e in errors:
        print(f"ERROR {e}")
    ok_all = not errors
    for path in files:
        name = path.name
        try:
            z, out = simulate_file(str(path), dtype)
        except (ValueError, OSError, KeyError) as ex:
            print(f"ERROR {name}: {ex}")
            ok_all = False
            continue
        first, max_err = compare(z, out, args.tol)
        if args.float32:
            print(f"DRIFT {name}: {drift_summary(z, out)}")
            continue
        if first is None:
            print(f"OK   {name}: {len(z['x']) - 1} ticks match (max abs err {max_err:.3g})")
        else:
            ok_all = False
            t, f, e, g = first
            print(f"DIFF {name}: first divergence tick {t} field {f} expected {e!r} got {g!r}")
    return 0 if ok_all else 1


if __name__ == "__main__":
    sys.exit(main())
