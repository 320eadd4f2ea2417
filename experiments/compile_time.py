"""Where a train chunk's compile time goes: trace, lower, XLA compile, and what the program holds.

    python experiments/compile_time.py arena_ff ppo.num_envs=2048 [--updates 1] [--json OUT]

Prints one JSON line: seconds to build the program, trace+lower, and XLA-compile the chunk of
``--updates`` updates, the optimized HLO's size (instructions, fusions, loops, convolutions,
custom calls such as cuDNN/cuBLAS that autotuning explores), and the library measured.
Set ``XLA_FLAGS`` around it to test compiler options (e.g. ``--xla_gpu_autotune_level=0``).
"""

from __future__ import annotations

import argparse
import json
import os
import re
import sys
import time
from pathlib import Path

import jax


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("recipe")
    p.add_argument("overrides", nargs="*")
    p.add_argument("--updates", type=int, default=1)
    p.add_argument("--label", default="")
    p.add_argument("--json", default=None, help="append the record to this file")
    a = p.parse_args()
    jax.config.update("jax_compilation_cache_dir", None)
    from loop_census import opcodes  # this script's folder

    import jaxrl_arena
    from jaxrl_arena import config as C
    from jaxrl_arena.train import make_train

    optional = [o for o in ("eval.every_updates=0",) if o.split("=")[0] in C.all_keys()]
    t0 = time.perf_counter()
    cfg = C.apply_overrides(C.get_recipe(a.recipe), [
        f"run.updates_per_chunk={a.updates}", "run.total_timesteps=100_000_000_000", *optional,
        *a.overrides])
    prog = make_train(cfg, devices=jax.devices()[:1])
    state = jax.eval_shape(prog.init)
    t1 = time.perf_counter()
    lowered = prog.chunk_for(a.updates).lower(state)
    t2 = time.perf_counter()
    exe = lowered.compile()
    t3 = time.perf_counter()
    text = exe.as_text()
    ops = opcodes(text)
    count = lambda name: sum(1 for o in ops if o == name)
    targets = re.findall(r'custom_call_target="([^"]+)"', text)
    rec = {
        "label": a.label, "recipe": a.recipe, "overrides": a.overrides,
        "xla_flags": os.environ.get("XLA_FLAGS", ""), "build_s": t1 - t0, "lower_s": t2 - t1,
        "compile_s": t3 - t2, "instructions": len(ops), "fusions": count("fusion"),
        "whiles": count("while"), "convolutions": count("convolution"),
        "custom_calls": {t: targets.count(t) for t in sorted(set(targets))},
        "device": jax.devices()[0].device_kind, "jax": jax.__version__,
        "library": str(Path(jaxrl_arena.__file__).parent.parent),
    }
    line = json.dumps(rec)
    print(line, flush=True)
    if a.json:
        with open(a.json, "a") as f:
            f.write(line + "\n")


if __name__ == "__main__":
    sys.exit(main())
