"""Conformance replay of the reference engine's golden recordings (tests/data/golden/arena).

    python -m tools.arena_golden FILE.npz [FILE.npz ...]     # or: --all

Each file is rebuilt from ``grid_ascii`` + initial inventory, then replayed with the recorded
agent order and actions (and the harness's ``inventory_sets``); every state row, reward,
success flag, observation token, terminal and the final stats are compared exactly. Prints
the first divergence per file and exits 0 only if every file matches.

To compile few times, files are grouped by agent count and padded to a common map shape,
converter count and step count (padding cells are void; padded steps are not compared).
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from dataclasses import dataclass
from pathlib import Path

import jax
import jax.numpy as jnp
import numpy as np

from envs import golden_data
from envs.arena import constants as K
from envs.arena.ascii_map import from_ascii, parse_ascii
from envs.arena.env import ArenaEnv
from envs.arena.state import EnvParams, EnvState, make_params
from envs.arena.stats import episode_stats


def golden_dir() -> Path:
    """The arena recordings: ``<golden>/arena`` (``envs.golden_data.golden_dir``)."""
    return (golden_data.golden_dir() / "arena").resolve()


def all_golden_files() -> list[Path]:
    d = golden_dir()
    return sorted(d.glob("*.npz")) + sorted((d / "scenarios").glob("*.npz"))


# ----------------------------------------------------------------------------- loading
@dataclass
class Recording:
    path: Path
    z: dict
    meta: dict
    rows: list[str]
    num_agents: int
    num_converters: int
    steps: int
    shape: tuple[int, int]


def load(path) -> Recording:
    path = Path(path)
    with np.load(path, allow_pickle=False) as f:
        z = {k: f[k] for k in f.files}
    rows = [str(r) for r in z["grid_ascii"]]
    grid, _, kinds, _ = parse_ascii(rows)
    return Recording(
        path=path,
        z=z,
        meta=json.loads(str(z["meta_json"])),
        rows=rows,
        num_agents=int(z["num_agents"]),
        num_converters=len(kinds),
        steps=int(z["actions"].shape[0]),
        shape=grid.shape,
    )


def params_for(rec: Recording) -> EnvParams:
    cooldown = K.CONV_COOLDOWN.copy()
    for name, over in rec.meta.get("object_overrides", {}).items():
        kind = K.CONV_KIND_NAMES.index(name)
        for field, value in over.items():
            if field != "cooldown":
                raise NotImplementedError(f"object override {name}.{field}")
            vals = value if isinstance(value, list) else [value]
            if len(set(vals)) != 1:
                raise NotImplementedError("cycled cooldown lists")
            cooldown[kind] = vals[0]
    return make_params(max_steps=int(rec.z["max_steps"]), cooldown=tuple(int(c) for c in cooldown))


def set_inventories(s: EnvState, target, mask) -> EnvState:
    """The test harness's ``set_inventory(i, items)`` for every agent with ``mask[i]``: the
    engine clears the whole inventory (booked as ``.lost``), then adds the given items
    (booked as ``.gained``); the recorded token order afterwards is item-id order."""
    cur = s.agent_inv.astype(jnp.int32)
    target = jnp.clip(target, 0, jnp.asarray(K.AGENT_INV_LIMIT))
    m = mask[:, None]
    lost = jnp.where(m, cur, 0)
    gained = jnp.where(m, target, 0)
    stats = s.agent_stats
    stats = stats.at[:, K.S_LOST : K.S_LOST + K.NUM_RESOURCES].add(lost)
    stats = stats.at[:, K.S_GAINED : K.S_GAINED + K.NUM_RESOURCES].add(gained)
    seq = s.inv_seq + (K.NUM_RESOURCES - 1 - jnp.arange(K.NUM_RESOURCES))  # lowest id in front
    return s.replace(
        agent_inv=jnp.where(m, target, cur).astype(jnp.uint8),
        agent_inv_seq=jnp.where(m & (target > 0), seq, s.agent_inv_seq),
        agent_stats=stats,
        inv_seq=s.inv_seq + 16,
    )


# ----------------------------------------------------------------------------- replay
def make_replay(env: ArenaEnv):
    """jit(vmap(run)): run(state, params, actions[T,A], orders[T,A], sets[T,A,10],
    set_mask[T,A], live[T]) -> (obs0, row-0 record, final state, per-step records)."""

    def record(s: EnvState):
        return {
            "agent_pos": s.agent_pos.astype(jnp.int16),
            "agent_orientation": s.agent_ori,
            "agent_frozen": s.agent_frozen,
            "agent_inventory": s.agent_inv,
            "agent_stat_reward": s.agent_potential,
            "conv_converting": s.conv_converting,
            "conv_cooling": s.conv_cooling,
            "conv_inv": s.conv_inv,
        }

    def run(state, params, actions, orders, sets, set_mask, live):
        def step(s, xs):
            a, o, inv_set, mask, is_live = xs
            s0 = s
            s = set_inventories(s, inv_set, mask)  # harness inventory sets before the step
            obs, s, r, term, trunc, info = env.step_env_ordered(None, s, a, params, o)
            out = record(s)
            out.update(
                obs=obs,
                rewards=r,
                terminals=term,
                truncations=trunc,
                action_success=info["action_success"],
            )
            # padding steps (beyond the recording) leave the state as it is
            s = jax.tree.map(lambda new, old: jnp.where(is_live, new, old), s, s0)
            return s, out

        obs0 = env.observe(state)
        final, recs = jax.lax.scan(step, state, (actions, orders, sets, set_mask, live))
        return obs0, record(state), final, recs

    # one compiled, vmapped scan replays a whole group of recordings at once
    return jax.jit(jax.vmap(run))


_episode_stats = jax.jit(episode_stats)


def _first_mismatch(name, expected, got):
    """(row, index tuple, expected, got) of the first mismatch along axis 0, or None."""
    expected = np.asarray(expected)
    got = np.asarray(got)
    if expected.shape != got.shape:
        return (0, (), f"shape {expected.shape}", f"shape {got.shape}")
    if np.issubdtype(expected.dtype, np.floating):
        bad = ~((expected == got) | (np.isnan(expected) & np.isnan(got)))
    else:
        bad = expected != got
    if not bad.any():
        return None
    idx = np.argwhere(bad)[0]
    return int(idx[0]), tuple(int(x) for x in idx[1:]), expected[tuple(idx)], got[tuple(idx)]


def compare(rec: Recording, obs0, rec0, final: EnvState, recs, env: ArenaEnv) -> list[str]:
    """All field mismatches as 'step=.. agent=.. field=.. expected=.. got=..', earliest first."""
    z = rec.z
    T, m = rec.steps, rec.num_converters
    recs = jax.tree.map(lambda x: np.asarray(x)[:T], recs)
    rec0 = jax.tree.map(np.asarray, rec0)

    def rows(key):
        return np.concatenate([rec0[key][None], recs[key]], axis=0)

    conv = z["conv_state"]
    checks = [
        ("agent_pos", z["agent_pos"], rows("agent_pos"), "state"),
        ("agent_orientation", z["agent_orientation"], rows("agent_orientation"), "state"),
        ("agent_frozen", z["agent_frozen"], rows("agent_frozen"), "state"),
        ("agent_inventory", z["agent_inventory"], rows("agent_inventory"), "state"),
        ("agent_stat_reward", z["agent_stat_reward"], rows("agent_stat_reward"), "state"),
        ("conv.converting", conv[:, :, 3].astype(bool), rows("conv_converting")[:, :m], "conv"),
        ("conv.cooling_down", conv[:, :, 4].astype(bool), rows("conv_cooling")[:, :m], "conv"),
        ("conv.inventory", conv[:, :, 5:].astype(np.uint8), rows("conv_inv")[:, :m], "conv"),
        ("obs", z["obs"], np.concatenate([np.asarray(obs0)[None], recs["obs"]], 0), "state"),
        ("rewards", z["rewards"], recs["rewards"], "step"),
        ("action_success", z["action_success"], recs["action_success"], "step"),
        ("terminals", z["terminals"], recs["terminals"], "step"),
        ("truncations", z["truncations"], recs["truncations"], "step"),
    ]
    found = []
    for name, exp, got, kind in checks:
        mm = _first_mismatch(name, exp, got)
        if mm is None:
            continue
        row, idx, e, g = mm
        step = row if kind in ("state", "conv") else row + 1  # state row t = after step t
        who = f"converter={idx[0]}" if kind == "conv" else f"agent={idx[0]}" if idx else "agent=-"
        detail = f"[{','.join(map(str, idx[1:]))}]" if len(idx) > 1 else ""
        found.append((step, f"step={step} {who} field={name}{detail} expected={e} got={g}"))
    mm = _first_mismatch("episode_rewards", z["episode_rewards"], np.asarray(final.episode_return))
    if mm is not None:
        found.append(
            (
                T,
                f"step={T} agent={mm[1][0] if mm[1] else '-'} field=episode_rewards expected={mm[2]} got={mm[3]}",
            )
        )
    # final per-agent stats (a stat the engine never booked counts as 0)
    mine = {k: np.asarray(v) for k, v in _episode_stats(final).items()}
    agent_stats = json.loads(str(z["stats_json"]))["agent"]
    keys = sorted(set(mine) | {k for a in agent_stats for k in a})
    for key in keys:
        exp = np.array([a.get(key, 0.0) for a in agent_stats], np.float64)
        if key not in mine:
            if np.any(exp != 0):
                found.append(
                    (
                        T,
                        f"step={T} agent=- field=stats[{key}] expected={exp.tolist()} got=<not implemented>",
                    )
                )
            continue
        got = mine[key].astype(np.float64)
        bad = np.flatnonzero(exp != got)
        if bad.size:
            a = int(bad[0])
            found.append(
                (T, f"step={T} agent={a} field=stats[{key}] expected={exp[a]} got={got[a]}")
            )
    found.sort(key=lambda x: x[0])
    return [f for _, f in found]


def _inputs(rec: Recording, steps: int, n: int):
    """Actions / orders / inventory sets padded to ``steps`` steps and ``n`` agents (parked
    agents noop and come last in the order)."""
    z = rec.z
    m, T = rec.num_agents, rec.steps
    actions = np.zeros((steps, n), np.int32)
    actions[:T, :m] = z["actions"]
    orders = np.tile(np.arange(n, dtype=np.int32), (steps, 1))
    orders[:T, :m] = z["agent_order"]
    sets = np.zeros((steps, n, K.NUM_RESOURCES), np.int32)
    mask = np.zeros((steps, n), bool)
    for row in z["inventory_sets"]:
        t, i = int(row[0]), int(row[1])
        sets[t, i] = row[2:]
        mask[t, i] = True
    return actions, orders, sets, mask


def replay_group(recs: list[Recording]) -> dict[Path, list[str]]:
    """Replay recordings with one compiled scan: maps are padded to a common shape, missing
    agents are parked on the padding (they act noop and are not compared)."""
    n = max(r.num_agents for r in recs)
    h = max(r.shape[0] for r in recs)
    w = max(r.shape[1] for r in recs)
    if any(r.num_agents < n for r in recs):
        h, w = h + 4, w + n + 4  # room to park agents > 3 cells away from every map
    c = max(max(r.num_converters for r in recs), 1)
    steps = max(r.steps for r in recs)
    env = ArenaEnv(num_agents=n, obs_kind="tokens", map_shape=(h, w), num_converters=c)
    run = make_replay(env)
    inputs = []
    for rec in recs:
        params = params_for(rec)
        state = from_ascii(
            rec.rows,
            params=params,
            initial_inventory=[tuple(p) for p in rec.meta.get("initial_inventory", [])],
            pad_to=(h, w),
            num_converters=c,
            num_agents=n,
        )
        actions, orders, sets, mask = _inputs(rec, steps, n)
        live = np.arange(steps) < rec.steps
        inputs.append((state, params, actions, orders, sets, mask, live))
    batch = jax.tree.map(lambda *xs: np.stack([np.asarray(x) for x in xs]), *inputs)
    results = jax.tree.map(np.asarray, run(*batch))
    out = {}
    for k, rec in enumerate(recs):
        obs0, rec0, final, records = jax.tree.map(lambda x, k=k: x[k], results)
        m = rec.num_agents
        if m < n:  # drop the parked agents before comparing
            obs0, rec0, final, records = _take_agents((obs0, rec0, final, records), m, n)
        out[rec.path] = compare(rec, obs0, rec0, final, records, env)
    return out


def _take_agents(tree, m, n):
    """Keep agents 0..m-1 on every per-agent axis (axis of size n right after time)."""
    obs0, rec0, final, records = tree

    def cut0(x):
        return x[:m] if x.ndim >= 1 and x.shape[0] == n else x

    def cut1(x):
        return x[:, :m] if x.ndim >= 2 and x.shape[1] == n else x

    rec0 = {k: (cut0(v) if k.startswith("agent") else v) for k, v in rec0.items()}
    records = {k: (cut1(v) if not k.startswith("conv") else v) for k, v in records.items()}
    final = final.replace(
        agent_stats=final.agent_stats[:m],
        agent_inv=final.agent_inv[:m],
        agent_max_steps_without_motion=final.agent_max_steps_without_motion[:m],
        episode_return=final.episode_return[:m],
    )
    return obs0[:m], rec0, final, records


def replay_files(paths) -> dict[Path, list[str]]:
    recs = [load(p) for p in paths]
    groups: dict[tuple, list[Recording]] = {}
    for r in recs:  # small scenario maps share one compiled scan, full arenas another
        big = r.shape[0] * r.shape[1] > 1024
        groups.setdefault((big, r.num_agents if big else 0), []).append(r)
    out = {}
    for key in sorted(groups):
        out.update(replay_group(groups[key]))
    return {Path(p): out[Path(p)] for p in paths}


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    ap.add_argument("files", nargs="*", help="golden .npz files")
    ap.add_argument("--all", action="store_true", help="every file in the golden arena folder")
    ap.add_argument(
        "-v", "--verbose", action="store_true", help="list up to 10 mismatching fields per file"
    )
    args = ap.parse_args(argv)
    paths = [Path(p) for p in args.files]
    if args.all:
        paths += all_golden_files()
    if not paths:
        ap.error("no files (give files or --all)")
    t0 = time.time()
    results = replay_files(paths)
    ok = 0
    for p, errs in results.items():
        if not errs:
            ok += 1
            print(f"OK    {p.name}")
        else:
            print(f"FAIL  {p.name}: {errs[0]}")
            if args.verbose:
                for e in errs[1:10]:
                    print(f"        {e}")
    print(f"{ok}/{len(results)} files match exactly ({time.time() - t0:.1f}s)")
    return 0 if ok == len(results) else 1


if __name__ == "__main__":
    sys.exit(main())
