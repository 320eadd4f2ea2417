"""Evaluate a trained N++ policy on the maps of the human replays: success and frames to win
against the human's frames.

    python experiments/npp_human_levels.py runs/<name>                  # golden replays, 8 episodes
    python experiments/npp_human_levels.py runs/<name> --deterministic  # argmax, 1 episode per map
    python experiments/npp_human_levels.py runs/<name> --episodes 16 --max-frames 5000 \\
        --out human.json --markdown human.md
    python experiments/npp_human_levels.py runs/<name> --check-human    # also replay the humans

For every replay: its map (a human level), the human's frames to win (the replay index's
re-simulated outcome frame when the index knows the file, else the replay's number of inputs:
every golden replay wins on its last input) and K episodes of the policy on that map, up to
``--max-frames`` 60 fps frames (default: the run's episode limit). Frames are the simulator's
own counter (``state.sim.frame``), so a win inside a block of ``frame_skip`` frames counts its
exact frame, like the human's.

The run's env reads generated levels; the evaluation env is a copy of it that reads fixed
levels with the exact schedule for any fixed level (``NppEnv.default_tick_options("fixed")``:
human maps may have several exit switches) and whose entity types and capacity cover every
map (the union of the maps' types, the largest entity and door counts). Those change no
observation shape (asserted against the policy's input). All maps x episodes play in one
compiled program (vmapped episodes, one ``lax.while_loop`` until every episode ended or the
frame cap). ``--check-human`` plays the humans' own inputs through the same episode program
(``play_episodes``) at frame skip 1 and reports any replay that does not win at exactly its
human frame count.

The observations show only part of what human maps hold (``SEEN_TYPES``): the report lists,
per map, the entity types present that the run's observation kind does not show.

Errors (no run dir, no checkpoint, not an N++ run, no replays) are one line on stderr, exit 2.
"""

from __future__ import annotations

import argparse
import copy
import dataclasses
import hashlib
import json
import re
import statistics
import sys
import time
import warnings
import zlib
from collections.abc import Callable
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import jax
import jax.numpy as jnp
import numpy as np

from envs.npp import constants as C
from envs.npp.bc_data import inputs_to_action
from envs.npp.env import NppEnv
from envs.npp.level import Level, load_map
from envs.npp.levels import golden_dir, stack_levels
from envs.npp.map_format import decode_inputs, parse_map, read_replay
from jaxrl_arena.config import ConfigError

DEFAULT_EPISODES = 8
NO_CHECKPOINT = "{run} holds no checkpoint yet; train it (or wait for its first checkpoint)"
CATEGORY_ORDER = ("very_simple", "simple", "medium", "complex", "mine_heavy", "exploration")
_CATEGORY = re.compile(r"_train_([a-z_]+)_\d+\.replay$")

ENTITY_NAMES = {
    C.T_MINE: "toggle mine", C.T_GOLD: "gold", C.T_EXIT: "exit door", C.T_SWITCH: "exit switch",
    C.T_DOOR_REGULAR: "regular door", C.T_DOOR_LOCKED: "locked door", C.T_DOOR_TRAP: "trap door",
    C.T_LAUNCH_PAD: "launch pad", C.T_ONE_WAY: "one-way platform", C.T_DRONE_ZAP: "zap drone",
    C.T_BOUNCE_BLOCK: "bounce block", C.T_THWUMP: "thwump", C.T_MINE_SAFE: "toggle mine (safe)",
    C.T_BOOST_PAD: "boost pad", C.T_DEATH_BALL: "death ball", C.T_DRONE_MINI: "mini drone",
    C.T_SHOVE_THWUMP: "shove thwump",
}
# Entity types each observation kind shows (envs/npp/observations.py): mines (nearest deadly
# distance, mine planes), the first exit switch and its door (positions, goal planes), the
# switches of locked/trap doors (distance, count; the grid also marks closed door segments).
# Drones, thwumps and death balls enter only the count of hazards in the ninja's component
# (reachability feature 4, at their load positions): no position, no motion. Tiles alone make
# the solid planes, so solid entities (one-ways, bounce blocks, thwumps) are invisible walls.
_SEEN_STATE = {C.T_MINE, C.T_MINE_SAFE, C.T_EXIT, C.T_SWITCH, C.T_DOOR_LOCKED, C.T_DOOR_TRAP}
SEEN_TYPES = {"state": _SEEN_STATE, "state_local": _SEEN_STATE,
              "grid": _SEEN_STATE | {C.T_DOOR_REGULAR}}
HAZARD_COUNT_ONLY = {C.T_DRONE_ZAP, C.T_THWUMP, C.T_DEATH_BALL, C.T_DRONE_MINI}


def unseen_types(obs_kind: str, present) -> list[int]:
    """The entity types in ``present`` that observations of ``obs_kind`` do not show as
    objects (hazard-count-only types included)."""
    return sorted(set(present) - SEEN_TYPES[obs_kind])


def category(name: str) -> str:
    """The replay's level category from its file name (``..._train_<category>_<n>.replay``),
    ``other`` for any other name."""
    m = _CATEGORY.search(name)
    return m.group(1) if m else "other"


# ----------------------------------------------------------------------------- human maps


@dataclasses.dataclass
class HumanReplay:
    """One replay, parsed on the host (its level is built once the shared shapes are known)."""

    path: Path
    map_bytes: bytes
    actions: np.ndarray  # int32[T]: the human's Discrete(6) action per 60 fps frame
    entity_types: tuple[int, ...]
    n_entities: int
    n_doors: int
    human_frames: int | None  # frames to win; None when the recorded human did not win
    human_source: str  # "index" (replays_index.json) or "inputs" (the replay's length)
    repaired: bool

    @property
    def name(self) -> str:
        return self.path.name


def replay_index(folder: Path) -> dict[str, dict]:
    """``replays_index.json`` entries by file name, from the folder or its parent (the golden
    layout), ``{}`` when there is none."""
    for candidate in (folder / "replays_index.json", folder.parent / "replays_index.json"):
        if candidate.is_file():
            return {r["file"]: r for r in json.loads(candidate.read_text())["replays"]}
    return {}


def human_frames(path: Path, data: bytes, n_inputs: int, index: dict) -> tuple[int | None, str]:
    """The human's frames to win: the index's re-simulated outcome frame when it records this
    very file (same bytes; the repaired outcome for the malformed ones), else the number of
    inputs (a replay ends on its winning input)."""
    rec = index.get(path.name)
    if rec is not None and rec.get("sha256") == hashlib.sha256(data).hexdigest():
        if rec.get("malformed") and rec.get("repaired"):
            rec = {**rec, **rec["repaired"]}
        return (int(rec["outcome_frame"]) if rec.get("outcome") == "win" else None), "index"
    return n_inputs, "inputs"


def read_human_replays(paths, index: dict | None = None, report: Callable[[str], None] = print
                       ) -> tuple[list[HumanReplay], list[str]]:
    """Parse every replay; one line (reported and returned) per file that cannot be used."""
    out, skipped = [], []
    for path in map(Path, paths):
        try:
            data = path.read_bytes()
            with warnings.catch_warnings():
                warnings.simplefilter("ignore")  # a repaired replay is flagged in its record
                rep = read_replay(path)
            pm = parse_map(rep.map_bytes, require_exit=True)
        except (ValueError, OSError) as err:
            line = f"{path.name}: {' '.join(str(err).split())}"
            skipped.append(line)
            report(f"skipped {line}")
            continue
        frames, source = human_frames(path, data, len(rep.inputs), index or {})
        types = tuple(sorted({e.etype for e in pm.entities}))
        out.append(HumanReplay(
            path, rep.map_bytes, inputs_to_action(*decode_inputs(rep.inputs)).astype(np.int32),
            types, len(pm.entities), sum(e.etype in (5, 6, 8) for e in pm.entities), frames, source,
            rep.repaired))
    return out, skipped


def human_eval_env(run_env: NppEnv, replays: list[HumanReplay], max_frames: int,
                   frame_skip: int | None = None) -> NppEnv:
    """A copy of the run's env that reads fixed levels (exact schedule for any fixed level)
    with entity types and capacity covering ``replays``; the observation shape is the run's."""
    env = copy.copy(run_env)
    # The copy's cached default params are the run env's (its level shapes and frame limit);
    # dropped, so ``level_params`` builds this env's.
    env.__dict__.pop("_default_params", None)
    env.level_source = "fixed"
    env.tick_options = NppEnv.default_tick_options("fixed")
    # The maps' own types (not the run's): an absent type's logic would only be traced.
    types = {C.T_EXIT, C.T_SWITCH}.union(*(r.entity_types for r in replays))
    env.entity_types = tuple(sorted(types))
    env.max_entities = max([2] + [r.n_entities for r in replays])
    env.max_doors = max([1] + [r.n_doors for r in replays])
    env.max_frames = int(max_frames)
    if frame_skip is not None:
        env.frame_skip = int(frame_skip)
    want, got = run_env.observation_space().shape, env.observation_space().shape
    assert got == want, f"evaluation env observes {got}, the run's env {want}"
    return env


def build_levels(env: NppEnv, replays: list[HumanReplay]) -> Level:
    """The replays' maps as one stacked ``Level`` in ``env``'s shapes (every map parsed in
    :func:`read_human_replays` fits: ``human_eval_env`` covers its types and counts)."""
    return stack_levels([load_map(r.map_bytes, env.max_entities, env.max_doors, require_exit=True,
                                  entity_types=env.entity_types) for r in replays])


# ----------------------------------------------------------------------------- the program


def play_episodes(env: NppEnv, act: Callable, initial_carry: Callable[[int], Any]) -> Callable:
    """``run(agent_params, env_params[N], keys[N], max_steps) -> {field: [N]}``, jitted: N
    episodes side by side (one per row of the stacked params), each acting with its own key
    stream, in one ``lax.while_loop`` until all ended or ``max_steps`` agent steps (data: one
    compilation serves any cap). An episode's fields are taken at the step it ends (or at the
    cap): ``won``, ``died``, ``ended`` (terminated, or truncated by the env's frame limit),
    ``frames`` (the simulator's frame counter: exact inside a frame-skip block), ``steps`` and
    ``switch`` (exit switch hit).

    ``act(agent_params, keys[N], obs[N, A, ...], carry, t) -> (int32[N, A], carry)``."""

    def fields(state, steps):
        sim = state.sim
        return {"won": sim.won, "died": sim.dead, "frames": sim.frame.astype(jnp.int32),
                "steps": steps, "switch": sim.switch_hit}

    def run(agent_params, env_params, keys, max_steps):
        n = keys.shape[0]
        obs, state = jax.vmap(env.reset_env)(keys, env_params)
        steps0 = jnp.zeros(n, jnp.int32)
        rec0 = {**fields(state, steps0), "ended": jnp.zeros(n, bool)}

        def body(c):
            t, state, obs, carry, done, steps, rec = c
            k = jax.vmap(lambda key: jax.random.split(jax.random.fold_in(key, t)))(keys)
            action, carry = act(agent_params, k[:, 0], obs, carry, t)
            obs, state, _, term, trunc, _ = jax.vmap(env.step_env)(k[:, 1], state, action,
                                                                   env_params)
            live = ~done
            steps = steps + live.astype(jnp.int32)
            ends = live & jnp.all(term | trunc, axis=-1)
            take = ends | (live & (t + 1 >= max_steps))
            new = {**fields(state, steps), "ended": ends}
            rec = jax.tree.map(lambda old, x: jnp.where(take, x, old), rec, new)
            return t + 1, state, obs, carry, done | ends, steps, rec

        def cond(c):
            return (c[0] < max_steps) & ~jnp.all(c[4])

        init = (jnp.int32(0), state, obs, initial_carry(n * env.num_agents), jnp.zeros(n, bool),
                steps0, rec0)
        return jax.lax.while_loop(cond, body, init)[-1]

    return jax.jit(run)


def policy_actor(policy, deterministic: bool) -> Callable:
    """``act`` of :func:`play_episodes` for a ``networks.Policy`` (agent params = its params):
    sampled with each episode's key, or argmax."""

    def act(params, keys, obs, carry, t):
        n, a = obs.shape[:2]
        first = jnp.full(n * a, t == 0)
        carry, logits, _ = policy.apply(params, obs.reshape((n * a,) + obs.shape[2:]), carry, first)
        logits = logits.reshape(n, a, -1)
        if deterministic:
            return jnp.argmax(logits, -1).astype(jnp.int32), carry
        return jax.vmap(jax.random.categorical)(keys, logits).astype(jnp.int32), carry

    return act


def replay_actor() -> Callable:
    """``act`` of :func:`play_episodes` that plays a table of actions (agent params =
    ``int32[N, T]``: step ``t`` plays column ``t``, noop past the end)."""

    def act(table, keys, obs, carry, t):
        a = jnp.where(t < table.shape[1], table[:, jnp.minimum(t, table.shape[1] - 1)], 0)
        return a[:, None].astype(jnp.int32), carry

    return act


def episode_keys(seed: int, names: list[str], episodes: int) -> jax.Array:
    """One key per (map, episode), map-major: derived from the file name, so a map's episodes
    do not depend on which other maps are evaluated."""
    base = jax.random.PRNGKey(seed)
    per_map = [jax.random.fold_in(base, zlib.crc32(n.encode()) & 0x7FFFFFFF) for n in names]
    return jnp.stack([jax.random.fold_in(k, e) for k in per_map for e in range(episodes)])


def repeat_rows(params, k: int):
    """Each row of stacked ``params`` ``k`` times in a row (map-major, as ``episode_keys``)."""
    return jax.tree.map(lambda x: jnp.repeat(x, k, axis=0), params)


class HumanReplayer:
    """Per-frame action lists (the humans' inputs) played on the maps of ``replays`` through
    :func:`play_episodes` at frame skip 1, so every frame is the human's: ``replayer(actions)
    -> {field: [len(replays)]}``. Lists up to ``length`` frames (default: the longest replay's,
    rounded up to a power of two) share one compilation."""

    def __init__(self, run_env: NppEnv, replays: list[HumanReplay], length: int | None = None):
        n = length or max(len(r.actions) for r in replays)
        self.length = 1 << max(4, (n - 1).bit_length())
        self.env = human_eval_env(run_env, replays, max_frames=self.length + 1, frame_skip=1)
        self.params = self.env.level_params(build_levels(self.env, replays))
        self.keys = episode_keys(0, [r.name for r in replays], 1)
        self.program = play_episodes(self.env, replay_actor(), lambda n: ())

    def __call__(self, actions: list[np.ndarray]) -> dict[str, np.ndarray]:
        table = np.zeros((len(actions), self.length), np.int32)
        for i, a in enumerate(actions):
            if len(a) > self.length:
                raise ValueError(f"{len(a)} actions; this replayer plays {self.length} at most")
            table[i, :len(a)] = a
        return jax.device_get(self.program(jnp.asarray(table), self.params, self.keys,
                                           jnp.int32(self.length + 1)))


def replay_humans(run_env: NppEnv, replays: list[HumanReplay]) -> dict[str, np.ndarray]:
    """The humans' own inputs replayed (:class:`HumanReplayer`)."""
    return HumanReplayer(run_env, replays)([r.actions for r in replays])


# ----------------------------------------------------------------------------- the policy


@dataclasses.dataclass
class EvalPolicy:
    policy: Any  # networks.Policy
    params: Any  # one run's parameters
    env: NppEnv  # the env the policy was trained on
    description: str


def load_run(run: str | Path) -> EvalPolicy:
    """The latest checkpoint's policy (first seed) of a run directory; ``ConfigError`` (one
    line) when ``run`` is not a run directory of N++ with a checkpoint."""
    from jaxrl_arena.checkpoint import Checkpointer
    from jaxrl_arena.play import run_config
    from jaxrl_arena.policy_artifact import restore_run_params

    run = Path(run)
    if not run.is_dir():
        raise ConfigError(f"{run} is not a directory; give a training run directory (runs/<name>/)")
    cfg = run_config(run)
    if cfg.env.name != "npp":
        raise ConfigError(f"{run} is a run of env {cfg.env.name!r}, not an N++ run (env.name=npp)")
    if not (run / "checkpoints").is_dir():
        raise ConfigError(NO_CHECKPOINT.format(run=run))
    with Checkpointer(run / "checkpoints") as checkpoints:
        if checkpoints.latest_step() is None:
            raise ConfigError(NO_CHECKPOINT.format(run=run))
    _, program, params, step = restore_run_params(run)
    if not isinstance(program.env, NppEnv):
        raise ConfigError(f"{run}: its env is {type(program.env).__name__}, not NppEnv")
    return EvalPolicy(program.policy, params, program.env, f"policy of {run} at update {step}")


def load_artefact(path: str | Path, config: str | Path) -> EvalPolicy:
    """A policy artefact (``experiments/export_policy.py``) with the config of the run it came
    from (its ``config.json``: the artefact holds the network, not the env's frame skip or
    observation settings); ``ConfigError`` (one line) when they do not fit together."""
    from jaxrl_arena import config as config_lib
    from jaxrl_arena.cli import config_from_file
    from jaxrl_arena.policy_artifact import load_policy
    from jaxrl_arena.registry import make

    cfg, _ = config_from_file(str(config))
    if cfg.env.name != "npp":
        raise ConfigError(f"--config {config} is a config of env {cfg.env.name!r}, not N++")
    env = make(config_lib.replace(cfg, "env.name", "npp"))
    loaded = load_policy(path)
    shape = tuple(env.observation_space(env.default_params).shape)
    if tuple(loaded.meta["obs_shape"]) != shape:
        raise ConfigError(f"{path}: the policy reads observations {tuple(loaded.meta['obs_shape'])}"
                          f", the env of --config {config} makes {shape}")
    return EvalPolicy(loaded.policy, loaded.params, env, f"policy artefact {path}")


# ----------------------------------------------------------------------------- evaluation


def evaluate(agent: EvalPolicy, paths, *, episodes: int = DEFAULT_EPISODES,
             max_frames: int | None = None, deterministic: bool = False, seed: int = 0,
             index: dict | None = None, check_human: bool = False,
             report: Callable[[str], None] = print) -> dict:
    """The report (JSON-ready dict) of ``agent`` on the maps of the replay files ``paths``."""
    if episodes < 1:
        raise ConfigError(f"--episodes must be >= 1, got {episodes}")
    if deterministic and episodes != 1:
        raise ConfigError(f"--deterministic plays one episode per map (argmax is the same every "
                          f"time); got --episodes {episodes}")
    run_env = agent.env
    max_frames = run_env.max_frames if max_frames is None else int(max_frames)
    if max_frames < 1:
        raise ConfigError(f"--max-frames must be >= 1, got {max_frames}")
    replays, skipped = read_human_replays(paths, index, report)
    if not replays:
        raise ConfigError("no usable replay: " + "; ".join(skipped))
    env = human_eval_env(run_env, replays, max_frames)
    assert tuple(agent.policy.obs_shape) == env.observation_space().shape, (
        f"policy input {agent.policy.obs_shape} != observation {env.observation_space().shape}")
    names = [r.name for r in replays]
    t0 = time.perf_counter()
    params = repeat_rows(env.level_params(build_levels(env, replays)), episodes)
    program = play_episodes(env, policy_actor(agent.policy, deterministic),
                            agent.policy.initial_carry)
    out = jax.device_get(program(agent.params, params, episode_keys(seed, names, episodes),
                                 jnp.int32(env.max_episode_steps)))
    seconds = time.perf_counter() - t0
    resim = replay_humans(run_env, replays) if check_human else None

    maps = []
    for i, r in enumerate(replays):
        rows = slice(i * episodes, (i + 1) * episodes)
        won = np.asarray(out["won"][rows], bool)
        died = np.asarray(out["died"][rows], bool)
        frames = np.asarray(out["frames"][rows], int)
        wins = frames[won]
        med = float(np.median(wins)) if wins.size else None
        rec = {"file": r.name, "category": category(r.name), "human_frames": r.human_frames,
               "human_frames_source": r.human_source, "repaired": r.repaired,
               "entity_types": list(r.entity_types),
               "unseen_entity_types": unseen_types(env.obs_kind, r.entity_types),
               "episodes": episodes, "wins": int(won.sum()),
               "deaths": int(died.sum()),
               "timeouts": int((~won & ~died).sum()),  # neither within the frame cap
               "success_rate": float(won.mean()), "median_frames_to_win": med,
               "best_frames_to_win": int(wins.min()) if wins.size else None,
               "ratio": (med / r.human_frames) if med is not None and r.human_frames else None,
               "episode_won": won.tolist(),
               "episode_died": died.tolist(),
               "episode_frames": frames.tolist()}
        if resim is not None:
            rec["human_replayed"] = {"won": bool(resim["won"][i]),
                                     "frames": int(resim["frames"][i])}
        maps.append(rec)
    mismatches = [f"{m['file']}: human replayed to {m['human_replayed']} but recorded "
                  f"{m['human_frames']} frames" for m in maps
                  if "human_replayed" in m and m["human_replayed"] != {"won": True,
                                                                       "frames": m["human_frames"]}]
    return {
        "policy": agent.description, "mode": "deterministic" if deterministic else "sampled",
        "episodes_per_map": episodes, "max_frames": max_frames, "frame_skip": env.frame_skip,
        "seed": seed, "seconds_compile_and_play": round(seconds, 2),
        "env": {"obs_kind": env.obs_kind, "entity_types": list(env.entity_types),
                "max_entities": env.max_entities, "max_doors": env.max_doors,
                "run_entity_types": list(run_env.entity_types)},
        "skipped": skipped, "human_mismatches": mismatches, "maps": maps,
        "categories": {c: summarize([m for m in maps if m["category"] == c])
                       for c in ordered_categories(maps)},
        "overall": summarize(maps),
    }


def ordered_categories(maps: list[dict]) -> list[str]:
    present = {m["category"] for m in maps}
    return [c for c in CATEGORY_ORDER if c in present] + sorted(present - set(CATEGORY_ORDER))


def summarize(maps: list[dict]) -> dict:
    """Success rate over all episodes, maps with at least one win, and the median over those
    maps of their policy/human frame ratio."""
    episodes = sum(m["episodes"] for m in maps)
    ratios = [m["ratio"] for m in maps if m["ratio"] is not None]
    return {"maps": len(maps), "episodes": episodes,
            "success_rate": sum(m["wins"] for m in maps) / episodes if episodes else None,
            "maps_solved": sum(m["wins"] > 0 for m in maps),
            "median_ratio": statistics.median(ratios) if ratios else None}


# ----------------------------------------------------------------------------- output


def _num(x, fmt: str) -> str:
    return "–" if x is None else format(x, fmt)


def markdown(rep: dict) -> str:
    k = rep["episodes_per_map"]
    setup = (f"{rep['mode']} actions, {k} episode{'s' * (k > 1)} per map, at most "
             f"{rep['max_frames']} frames (frame skip {rep['frame_skip']}, obs "
             f"{rep['env']['obs_kind']}); {len(rep['maps'])} maps, {len(rep['skipped'])} "
             "skipped. Frames are 60 fps frames; policy frames: median over won episodes; "
             "ratio = policy / human.")
    lines = [f"# Human levels: {rep['policy']}", "", setup, "",
             "| map | category | human frames | success | policy frames | ratio | unseen types |",
             "|---|---|---:|---:|---:|---:|---|"]
    for m in rep["maps"]:
        human = _num(m["human_frames"], "d") + ("" if m["human_frames_source"] == "index" else "*")
        unseen = ",".join(map(str, m["unseen_entity_types"]))
        lines.append(f"| {m['file'].removesuffix('.replay')} | {m['category']} | {human} | "
                     f"{m['wins']}/{m['episodes']} | {_num(m['median_frames_to_win'], '.0f')} | "
                     f"{_num(m['ratio'], '.2f')} | {unseen} |")
    lines += ["", "| category | maps | episodes | success rate | maps solved | median ratio |",
              "|---|---:|---:|---:|---:|---:|"]
    for name, s in [*rep["categories"].items(), ("**overall**", rep["overall"])]:
        lines.append(f"| {name} | {s['maps']} | {s['episodes']} | "
                     f"{_num(s['success_rate'], '.3f')} | {s['maps_solved']} | "
                     f"{_num(s['median_ratio'], '.2f')} |")
    notes = []
    if any(m["human_frames_source"] != "index" for m in rep["maps"]):
        notes.append("\\* not in replays_index.json: the replay's number of inputs.")
    types = sorted({t for m in rep["maps"] for t in m["unseen_entity_types"]})
    if types:
        named = [f"{t} {ENTITY_NAMES.get(t, '?')}"
                 + (" (hazard count only)" if t in HAZARD_COUNT_ONLY else "") for t in types]
        notes.append("Unseen types (present, not shown by the observation): "
                     + ", ".join(named) + ".")
    notes += [f"skipped {s}" for s in rep["skipped"]]
    notes += [f"human replay mismatch: {s}" for s in rep["human_mismatches"]]
    if "human_replayed" in (rep["maps"][0] if rep["maps"] else {}) and not rep["human_mismatches"]:
        notes.append("Every human replayed through the evaluation program wins at its human "
                     "frame count.")
    return "\n".join(lines + ([""] + notes if notes else [])) + "\n"


def main(argv: list[str] | None = None, load: Callable[[Path], EvalPolicy] = load_run) -> int:
    p = argparse.ArgumentParser(prog="python experiments/npp_human_levels.py",
                                description=__doc__.splitlines()[0])
    p.add_argument("run", metavar="RUN_DIR", help="a training run directory (runs/<name>/), or "
                   "a policy artefact (experiments/export_policy.py) with --config")
    p.add_argument("--config", default=None, metavar="CONFIG.json",
                   help="with a policy artefact: the config.json of the run it was exported from")
    p.add_argument("--replays", default=None, metavar="DIR",
                   help="folder of .replay files (default: the golden replays)")
    p.add_argument("--episodes", type=int, default=None,
                   help=f"episodes per map (default {DEFAULT_EPISODES}; 1 with --deterministic)")
    p.add_argument("--max-frames", type=int, default=None,
                   help="60 fps frames per episode at most (default: the run's episode limit)")
    p.add_argument("--deterministic", action="store_true",
                   help="argmax actions instead of sampling")
    p.add_argument("--seed", type=int, default=0, help="seed of the sampled actions")
    p.add_argument("--check-human", action="store_true",
                   help="also replay each human's inputs through the evaluation program and "
                        "report any that does not win at its human frame count")
    p.add_argument("--out", default=None, metavar="FILE.json", help="write the report as JSON")
    p.add_argument("--markdown", default=None, metavar="FILE.md",
                   help="write the tables as markdown")
    args = p.parse_args(argv)

    try:
        folder = Path(args.replays) if args.replays else golden_dir() / "npp" / "replays"
    except FileNotFoundError as err:
        raise ConfigError(f"{err}; or give --replays DIR") from None
    if not folder.is_dir():
        raise ConfigError(f"--replays {folder} is not a folder")
    paths = sorted(folder.glob("*.replay"))
    if not paths:
        raise ConfigError(f"--replays {folder} holds no .replay files")
    is_artefact = (Path(args.run) / "policy.json").is_file()
    if is_artefact != bool(args.config):
        raise ConfigError(f"{args.run}: a policy artefact needs --config (its run's config.json)"
                          if is_artefact else f"--config applies to a policy artefact only; "
                          f"{args.run} is not one")
    agent = load_artefact(args.run, args.config) if is_artefact else load(Path(args.run))
    episodes = args.episodes
    if episodes is None:
        episodes = 1 if args.deterministic else DEFAULT_EPISODES
    rep = evaluate(agent, paths, episodes=episodes, max_frames=args.max_frames,
                   deterministic=args.deterministic, seed=args.seed, index=replay_index(folder),
                   check_human=args.check_human)
    text = markdown(rep)
    print(text, end="")
    if args.out:
        Path(args.out).parent.mkdir(parents=True, exist_ok=True)
        Path(args.out).write_text(json.dumps(rep, indent=1))
    if args.markdown:
        Path(args.markdown).parent.mkdir(parents=True, exist_ok=True)
        Path(args.markdown).write_text(text)
    return 0


if __name__ == "__main__":
    from jaxrl_arena.cli import main_guard

    main_guard(main)
