"""Re-simulate nclone ``.replay`` files in float64 and check their recorded outcome.

    python -m tools.npp_replay [FILE.replay | FOLDER ...]   # none: the golden replays

For each file prints the ticks simulated, the exit-switch tick and the win/death tick. Every
golden replay wins on exactly its last input (``replays_index.json``), so a file *reproduces*
when the ninja wins on tick ``n_inputs`` and neither wins nor dies earlier. The two known
one-byte-short files are repaired (a warning is printed). An input that cannot be checked (a
missing path, a folder without replays, a file that does not read or simulate) is one ERROR
line, and the rest are still checked. Exits 0 only if all files reproduce.
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
import hashlib
import sys
import warnings

import numpy as np  # noqa: E402

from envs.npp.golden import expand_inputs, npp_golden_dir, simulate, x64_scope  # noqa: E402
from envs.npp.map_format import decode_inputs, read_replay  # noqa: E402


def replay_outcome(path):
    """Returns a dict: n_inputs, ticks, switch_tick, win_tick, dead_tick (1-based, None = never)."""
    rep = read_replay(path)
    hor, jump = decode_inputs(rep.inputs)
    out = simulate(rep.map_bytes, hor, jump)
    st = out["state"][1:]
    first = lambda m: (int(np.argmax(m)) + 1) if m.any() else None
    win_t = first(st == 8)
    dead_t = first((st == 6) | (st == 7))
    end = min(t for t in (win_t, dead_t, len(hor)) if t is not None) if len(hor) else 0
    sw = out["switch_hit"][1:end + 1]
    return dict(n_inputs=len(hor), ticks=end, switch_tick=first(sw), win_tick=win_t if win_t == end else None,
                dead_tick=dead_t if dead_t == end else None, repaired=rep.repaired,
                map_sha256=hashlib.sha256(rep.map_bytes).hexdigest(), final_state=int(st[end - 1]),
                final_pos=(float(out["x"][end]), float(out["y"][end])),
                final_vel=(float(out["vx"][end]), float(out["vy"][end])),
                doors_opened=int(out["doors_opened"][end]), gold_collected=int(out["gold_collected"][end]))


def main(argv=None) -> int:
    with x64_scope():   # scoped: importing or calling this never flips the global flag
        return _main(argv)


def _main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("files", nargs="*", help="replay files or folders (default: the golden replays)")
    args = p.parse_args(argv)
    files, errors = expand_inputs(args.files, ".replay", npp_golden_dir() / "replays")
    for e in errors:
        print(f"ERROR {e}")
    ok_all, n_ok = not errors, 0
    for path in files:
        name = path.name
        try:
            with warnings.catch_warnings(record=True) as caught:
                warnings.simplefilter("always")
                r = replay_outcome(path)
            for w in caught:
                print(f"WARNING {w.message}")
        except (ValueError, OSError) as ex:
            print(f"ERROR {name}: {_one_line(ex)}")
            ok_all = False
            continue
        except Exception as ex:  # noqa: BLE001 - one bad file must not end the batch
            print(f"ERROR {name}: {type(ex).__name__}: {_one_line(ex)}")
            ok_all = False
            continue
        ok = r["win_tick"] is not None and r["win_tick"] == r["n_inputs"] and r["dead_tick"] is None
        ok_all &= ok
        print(f"{'OK  ' if ok else 'FAIL'} {name}: ticks {r['ticks']}/{r['n_inputs']} switch {r['switch_tick']} "
              f"win {r['win_tick']} dead {r['dead_tick']}{' (repaired)' if r['repaired'] else ''}")
        n_ok += ok
    print(f"{n_ok}/{len(files) + len(errors)} inputs reproduce")
    return 0 if ok_all else 1


def _one_line(error: BaseException) -> str:
    lines = str(error).strip().splitlines()
    return lines[0] if lines else type(error).__name__


if __name__ == "__main__":
    sys.exit(main())
