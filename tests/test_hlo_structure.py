"""Structural speed guard: the compiled train chunks keep no latency-bound constructs beyond
their committed budgets (tests/data/hlo_budgets.json). Not a timing: the optimized HLO is read
on CPU and counted.

Counted: ``while`` loops whose trip count XLA cannot tell (on GPUs each iteration reads its
predicate back to the host: a device-host round trip), ``conditional`` (the same round trip),
host transfers and callbacks (send/recv/infeed/outfeed, Python callbacks), ``sort`` and the
scatters of the rollout's reset write and final values (row compaction with ``jnp.nonzero``). Sizes are the
benchmark's (CartPole at 2048 envs, the arena at 2048), so the rollout's size-dependent choices
(reset select or scatter, dense or chunked final values) are the ones the GPU runs; the rollout
is short (compile structure does not depend on its length).

A count over its budget fails and names each construct with its op name and source line. A
count under budget fails too, so the budget is lowered with the change that earned it.
"""

import json
import re
from pathlib import Path

import jax
import pytest

from jaxrl_arena import config as C
from jaxrl_arena.train import make_train

BUDGETS = json.loads((Path(__file__).parent / "data" / "hlo_budgets.json").read_text())

PROGRAMS = {
    "cartpole": ("cartpole", ["ppo.num_envs=2048", "ppo.num_steps=4"]),
    "arena_ff": ("arena_ff", ["ppo.num_envs=2048", "ppo.num_steps=4", "ppo.minibatch_size=0",
                              "ppo.num_minibatches=4"]),
}

HOST_OPS = ("send", "recv", "send-done", "recv-done", "infeed", "outfeed")


def instructions(hlo_text: str):
    """(opcode, line) of every instruction of the optimized module."""
    for line in hlo_text.splitlines():
        m = re.match(r"\s*(?:ROOT\s+)?%?[\w.\-]+ = .*?\s([a-z][a-z0-9\-]*)\(", line)
        if m:
            yield m.group(1), line


def source_table(hlo_text: str) -> dict[str, str]:
    """stack_frame_id -> "file:line" from the module's FileNames/FileLocations/StackFrames."""
    files, locations, frames, section = {}, {}, {}, None
    for line in hlo_text.splitlines():
        if line in ("FileNames", "FunctionNames", "FileLocations", "StackFrames"):
            section = line
            continue
        m = re.match(r"(\d+) (.*)", line)
        if section is None or not m:
            section = None if not m else section
            continue
        key, rest = m.groups()
        if section == "FileNames":
            files[key] = Path(rest.strip('"')).name
        elif section == "FileLocations":
            f, ln = re.search(r"file_name_id=(\d+).*?line=(\d+)", rest).groups()
            locations[key] = f"{files.get(f, '?')}:{ln}"
        elif section == "StackFrames":
            frames[key] = locations.get(re.search(r"file_location_id=(\d+)", rest).group(1), "?")
    return frames


def where(line: str, frames: dict[str, str]) -> str:
    op = re.search(r'op_name="([^"]*)"', line)
    frame = re.search(r"stack_frame_id=(\d+)", line)
    loc = frames.get(frame.group(1), "?") if frame else "?"
    return f"{op.group(1) if op else '?'} ({loc})"


def census(hlo_text: str) -> dict[str, list[str]]:
    frames = source_table(hlo_text)
    where_ = lambda line: where(line, frames)
    found = {"while_unknown_trip_count": [], "conditional": [], "host_transfer": [],
             "python_callback": [], "sort": [], "reset_or_final_value_scatter": []}
    for opcode, line in instructions(hlo_text):
        if opcode == "while" and "known_trip_count" not in line:
            found["while_unknown_trip_count"].append(where_(line))
        elif opcode == "conditional":
            found["conditional"].append(where_(line))
        elif opcode in HOST_OPS:
            found["host_transfer"].append(where_(line))
        elif opcode == "custom-call" and "callback" in line:
            found["python_callback"].append(where_(line))
        elif opcode == "sort":
            found["sort"].append(where_(line))
        elif opcode == "scatter" and ("/auto_reset/" in line or "/final_value/" in line) \
                and "/fresh_resets/" not in line:
            found["reset_or_final_value_scatter"].append(where_(line))
    return found


@pytest.fixture(scope="module", params=sorted(PROGRAMS))
def compiled(request):
    recipe, overrides = PROGRAMS[request.param]
    cfg = C.apply_overrides(C.get_recipe(recipe), overrides + [
        "run.updates_per_chunk=1", "run.total_timesteps=1", "eval.every_updates=0"])
    prog = make_train(cfg, devices=jax.devices()[:1])
    state = jax.eval_shape(prog.init)
    return request.param, prog.chunk_for(1).lower(state).compile().as_text()


def test_compiled_chunk_within_structural_budget(compiled):
    name, text = compiled
    found = census(text)
    budget = BUDGETS[name]
    problems = []
    for construct, hits in found.items():
        allowed = budget[construct]
        if len(hits) > allowed:
            problems.append(f"{name}: {len(hits)} {construct} (budget {allowed}): " + "; ".join(hits))
        elif len(hits) < allowed:
            problems.append(f"{name}: {construct} fell to {len(hits)} (budget {allowed}): lower "
                            "the budget in tests/data/hlo_budgets.json")
    assert not problems, "\n".join(problems)


def test_census_sees_a_planted_loop_and_callback():
    """The census itself: an unknown-trip-count loop and a host callback are found, and a
    scan is not counted."""
    import jax.numpy as jnp

    def f(x):
        x = jax.lax.while_loop(lambda c: c.sum() < 100.0, lambda c: c * 2.0 + 1.0, x)
        x = jax.lax.scan(lambda c, _: (c + 1.0, None), x, None, length=4)[0]
        return jax.pure_callback(lambda v: v, jax.ShapeDtypeStruct(x.shape, x.dtype), x)

    found = census(jax.jit(f).lower(jnp.ones(3)).compile().as_text())
    assert len(found["while_unknown_trip_count"]) == 1
    assert len(found["python_callback"]) == 1
