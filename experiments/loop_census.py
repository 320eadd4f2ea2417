"""Ops per loop iteration: the CartPole train chunk next to the PureJaxRL-shaped anchor.

    python experiments/loop_census.py [--envs 2048] [--steps 128]

For every ``while`` loop with a known trip count (the rollout's steps, the epochs, the
minibatches) of each optimized program, counts the non-trivial top-level instructions of its
body by opcode. On a GPU each top-level fusion, copy, dot or custom call is a kernel launch per
iteration, so a body with more of them is slower when the work per kernel is small (CartPole).
Runs on any backend; the counts come from that backend's compiler, so compare like with like.
"""

from __future__ import annotations

import argparse
import re
import sys
from pathlib import Path

import jax

sys.path.insert(0, str(Path(__file__).resolve().parent))
sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

TRIVIAL = {"parameter", "get-tuple-element", "tuple", "constant", "bitcast"}


INSTRUCTION = re.compile(r"(?m)^\s*(?:ROOT\s+)?%?[\w.\-]+ = .*?\s([a-z][a-z0-9\-]*)\(")


def opcodes(text: str) -> list[str]:
    """The opcode of every instruction of an optimized HLO module's text."""
    return INSTRUCTION.findall(text)


def computations(text: str) -> dict[str, list[str]]:
    comps, cur = {}, None
    for line in text.splitlines():
        m = re.match(r"^(?:ENTRY )?%?([\w.\-]+) .*\{$", line)
        if m:
            cur = m.group(1)
            comps[cur] = []
        elif line.startswith("}"):
            cur = None
        elif cur:
            comps[cur].append(line)
    return comps


def loop_bodies(text: str) -> list[tuple[int, dict[str, int]]]:
    """(trip count, {opcode: count}) per known-trip-count loop, largest body first."""
    comps, out = computations(text), []
    for lines in comps.values():
        for line in lines:
            m = re.search(r'while\(.*body=%?([\w.\-]+).*known_trip_count":\{"n":"(\d+)"', line)
            if not m:
                continue
            ops = [o for o in opcodes("\n".join(comps.get(m.group(1), []))) if o not in TRIVIAL]
            out.append((int(m.group(2)), {k: ops.count(k) for k in sorted(set(ops))}))
    return sorted(out, key=lambda t: -sum(t[1].values()))


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--envs", type=int, default=2048)
    p.add_argument("--steps", type=int, default=128)
    p.add_argument("--top", type=int, default=4)
    a = p.parse_args()
    from anchor_cartpole import make_update

    from jaxrl_arena import config as C
    from jaxrl_arena.train import make_train

    cfg = C.apply_overrides(C.get_recipe("cartpole"), [
        f"ppo.num_envs={a.envs}", f"ppo.num_steps={a.steps}", "run.updates_per_chunk=1",
        "run.total_timesteps=1"])
    prog = make_train(cfg, devices=jax.devices()[:1])
    ours = prog.chunk_for(1).lower(jax.eval_shape(prog.init)).compile().as_text()
    init, update = make_update(a.envs, a.steps)
    carry = jax.eval_shape(init, jax.random.PRNGKey(0))
    anchor = jax.jit(lambda c: jax.lax.scan(update, c, None, 1)).lower(carry).compile().as_text()
    print(f"backend: {jax.default_backend()}, jax {jax.__version__}")
    print("| program | loop trips | ops per iteration | by opcode |")
    print("|---|---|---|---|")
    for name, text in (("ours", ours), ("anchor", anchor)):
        for trips, ops in loop_bodies(text)[: a.top]:
            detail = ", ".join(f"{k} {v}" for k, v in ops.items())
            print(f"| {name} | {trips} | {sum(ops.values())} | {detail} |")


if __name__ == "__main__":
    main()
