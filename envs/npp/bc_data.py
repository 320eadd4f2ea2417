"""Behaviour-cloning data from human replays: (observation, action) pairs on the human's own
trajectory, re-simulated frame by frame by the exact physics.

Section marks (§) cite docs/specs/npp.md (§11: replays and BC data; §7.1: input bytes).

A replay holds one input byte per 60 fps frame (§11); a policy acts once every ``frame_skip``
frames (4) and holds its action. Pairs are therefore taken at the start of every block of
``frame_skip`` frames: the observation is the env's observation at that frame and the label is
the human's input at that frame as the ``Discrete(6)`` action. The state sequence is the human's
exactly (every frame is simulated with the human's own input), so no state comes from a
trajectory the human did not play; the price is label noise where the human changed input
inside a block, which is counted per replay (``changed_in_block``) so it can be reported.

The observation is the one the given env produces (``state``, ``state_local`` or ``grid``:
whatever its ``obs_kind``, so the pairs fit the policy that env trains); the physics is the
exact schedule for fixed levels whatever schedule the env uses for its own levels.

Replays that do not load (malformed bytes, more entities than the env's ``max_entities``,
entity types the env does not simulate) or that do not end in a win are skipped, each with a
one-line reason (``build_dataset``), never silently.

Each replay's pairs are cached (``<cache_dir>/<key>.npz``), keyed by the replay file's bytes,
the env's observation settings and the source of ``envs/npp`` (physics, observations and this
module): any change to one of them misses the cache and the replay is simulated again.
"""

from __future__ import annotations

import copy
import dataclasses
import functools
import hashlib
import os
from pathlib import Path

import jax
import jax.numpy as jnp
import numpy as np

from envs.npp.env import NppEnv
from envs.npp.level import load_map
from envs.npp.map_format import decode_inputs, read_replay


def inputs_to_action(hor: np.ndarray, jump: np.ndarray) -> np.ndarray:
    """(hor in {-1, 0, 1}, jump in {0, 1}) -> the ``Discrete(6)`` action of ``action_to_inputs``
    (noop, left, right, jump, jump+left, jump+right)."""
    hor, jump = np.asarray(hor, np.int32), np.asarray(jump, np.int32)
    return np.where(hor == 0, 0, np.where(hor < 0, 1, 2)).astype(np.int32) + 3 * jump


@dataclasses.dataclass
class ReplayPairs:
    obs: np.ndarray  # [n, *obs_shape]: the observation at each block start while the episode lasts
    actions: np.ndarray  # int32[n]
    won: bool
    frames: int  # frames simulated until the episode ended (or the inputs ran out)
    changed_in_block: int  # blocks whose human input changed after the block's first frame


class ReplaySimulator:
    """Re-simulates replays for one env configuration (observation kind, level shape, frame
    skip); one compiled program per input length bucket (powers of two)."""

    def __init__(self, env: NppEnv):
        self.env = env
        # One frame per step, reading the replay's level from params: the human's trajectory.
        # Human levels may have several exit switches: the exact schedule for any fixed level,
        # not the one-switch shortcut a generator env runs (NppEnv.default_tick_options).
        self.frame_env = copy.copy(env)
        self.frame_env.frame_skip = 1
        self.frame_env.level_source = "fixed"
        self.frame_env.tick_options = NppEnv.default_tick_options("fixed")
        self._compiled = {}

    def _program(self, blocks: int):
        """Simulates ``blocks`` blocks of ``frame_skip`` frames; only each block's first
        observation leaves the program (the pairs), not every frame's."""
        if blocks not in self._compiled:
            env = self.frame_env

            def run(params, actions, n_inputs):
                obs0, state0 = env.reset_env(jax.random.PRNGKey(0), params)

                def frame(carry, xs):
                    state, obs, done = carry
                    t, action = xs
                    live = ~done & (t < n_inputs)
                    obs2, state2, _, term, trunc, _ = env.step_env(jax.random.PRNGKey(0), state,
                                                                   action, params)
                    state = jax.tree.map(lambda a, b: jnp.where(live, a, b), state2, state)
                    obs_next = jnp.where(live, obs2, obs)
                    ended = done | (live & (term | trunc)[0])
                    return (state, obs_next, ended), None

                def block(carry, xs):
                    ts, _ = xs
                    _, obs_first, done = carry
                    first_live = ~done & (ts[0] < n_inputs)
                    carry, _ = jax.lax.scan(frame, carry, xs)
                    return carry, (obs_first, first_live)

                k = actions.shape[1]
                ts = jnp.arange(blocks * k, dtype=jnp.int32).reshape(blocks, k)
                (state, _, _), (obs, live) = jax.lax.scan(
                    block, (state0, obs0, jnp.bool_(False)), (ts, actions))
                return obs[:, 0], live, state.sim.won, state.sim.frame

            self._compiled[blocks] = jax.jit(run)
        return self._compiled[blocks]

    def replay(self, path) -> ReplayPairs:
        """Pairs of one replay file; raises ``ValueError`` (one line) when it cannot be used."""
        rep = read_replay(path)
        env = self.env
        try:
            level = load_map(rep.map_bytes, env.max_entities, env.max_doors, require_exit=True,
                             entity_types=env.entity_types)
        except ValueError as err:
            raise ValueError(f"{Path(path).name}: map not loadable for this env ({err})") from None
        hor, jump = decode_inputs(rep.inputs)
        actions = inputs_to_action(hor, jump)
        n, k = len(actions), env.frame_skip
        # Blocks in powers of two (at least 4): one compiled program per length bucket.
        num_blocks = 1 << max(2, int(np.ceil(np.log2(max(-(-n // k), 1)))))
        padded = np.zeros(num_blocks * k, np.int32)
        padded[:n] = actions
        blocks = padded.reshape(num_blocks, k)
        params = env.make_params(level=level)
        obs, live, won, frames = jax.device_get(self._program(num_blocks)(
            params, jnp.asarray(blocks), jnp.int32(n)))
        keep = np.asarray(live)
        changed = int(np.sum(np.any(blocks[keep] != blocks[keep][:, :1], axis=1)))
        return ReplayPairs(np.asarray(obs)[keep], blocks[keep, 0], bool(won), int(frames), changed)


@dataclasses.dataclass
class Dataset:
    train_obs: np.ndarray
    train_actions: np.ndarray
    val_obs: np.ndarray
    val_actions: np.ndarray
    train_files: list[str]
    val_files: list[str]
    skipped: list[str]  # one line per replay that was not used, with the reason
    changed_in_block: int


@functools.lru_cache(maxsize=1)
def source_version() -> str:
    """Hash of the ``envs/npp`` sources: the code that computes the pairs."""
    h = hashlib.sha256()
    for path in sorted(Path(__file__).resolve().parent.glob("*.py")):
        h.update(path.name.encode() + b"\0" + path.read_bytes())
    return h.hexdigest()[:16]


def cache_key(env: NppEnv, path: Path) -> str:
    """The cache entry of one replay: its bytes, the env's observation settings, the code."""
    h = hashlib.sha256(Path(path).read_bytes())
    h.update(repr((env.obs_kind, env.frame_skip, env.max_frames, env.max_entities,
                   env.max_doors, env.entity_types, str(np.dtype(env.dtype)),
                   source_version())).encode())
    return h.hexdigest()[:20]


def _load_cached(path: Path) -> ReplayPairs | None:
    """A cache entry, or None when it is absent or unreadable (then it is rebuilt)."""
    try:
        with np.load(path) as z:
            return ReplayPairs(z["obs"], z["actions"], bool(z["won"]), int(z["frames"]),
                               int(z["changed"]))
    except (OSError, ValueError, KeyError, EOFError):
        return None


def _store_cached(path: Path, rp: ReplayPairs) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f"{path.name}.{os.getpid()}.tmp")
    with open(tmp, "wb") as fh:   # written whole, then renamed: a reader never sees half a file
        np.savez_compressed(fh, obs=rp.obs, actions=rp.actions, won=rp.won, frames=rp.frames,
                            changed=rp.changed_in_block)
    os.replace(tmp, path)


def replay_files(folder) -> list[Path]:
    """The ``*.replay`` files of ``folder`` (sorted); ``ValueError`` (one line) when none."""
    folder = Path(folder)
    if not folder.is_dir():
        raise ValueError(f"{folder} is not a folder of .replay files")
    files = sorted(folder.glob("*.replay"))
    if not files:
        raise ValueError(f"{folder} holds no .replay files")
    return files


def build_dataset(env: NppEnv, paths, val_fraction: float = 0.1, seed: int = 0,
                  cache_dir=None, report=print, simulator: ReplaySimulator | None = None
                  ) -> Dataset:
    """Pairs of every usable replay in ``paths`` (files), split by replay file (a validation
    replay's frames never appear in training; with ``val_fraction > 0`` and two usable replays
    or more, at least one is held out and at least one trains). Each replay's pairs are cached
    as ``<cache_dir>/<key>.npz`` (``cache_key``). ``simulator``: one of ``env`` whose compiled
    programs are reused (default: a new one)."""
    sim = simulator or ReplaySimulator(env)
    paths = sorted(Path(p) for p in paths)
    pairs, skipped, changed = {}, [], 0
    for path in paths:
        try:
            cached = Path(cache_dir) / f"{cache_key(env, path)}.npz" if cache_dir else None
            rp = _load_cached(cached) if cached is not None else None
            if rp is None:
                rp = sim.replay(path)
                if cached is not None:
                    _store_cached(cached, rp)
        except (ValueError, OSError) as err:
            line = " ".join(str(err).split())   # one line, whatever the error's text
            if path.name not in line:
                line = f"{path.name}: {line}"
            skipped.append(line)
            report(f"skipped {line}")
            continue
        if not rp.won:
            line = f"{path.name}: not a win after {rp.frames} frames (only wins are imitated)"
            skipped.append(line)
            report(f"skipped {line}")
            continue
        pairs[path.name] = rp
        changed += rp.changed_in_block
    names = sorted(pairs)
    order = np.random.default_rng(seed).permutation(len(names))
    n_val = 0
    if len(names) > 1 and val_fraction > 0:
        n_val = min(len(names) - 1, max(1, round(val_fraction * len(names))))
    val = sorted(names[i] for i in order[:n_val])
    train = sorted(names[i] for i in order[n_val:])
    cat = lambda files, f: (np.concatenate([getattr(pairs[n], f) for n in files])
                            if files else np.zeros((0,), np.int32))
    return Dataset(cat(train, "obs"), cat(train, "actions"), cat(val, "obs"), cat(val, "actions"),
                   train, val, skipped, changed)
