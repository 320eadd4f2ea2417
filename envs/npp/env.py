"""``NppEnv``: the N++ level dynamics as a :class:`envs.base.MultiAgentEnv` with one agent.

* Actions: ``Discrete(6)`` (noop, left, right, jump, jump+left, jump+right; spec §7.1).
* Frame skip (static, default 4): the action is held for up to ``frame_skip`` 60 fps frames;
  win and death are checked after every frame and the frames after a win/death are not
  simulated (the state is latched), spec §7.2.
* ``terminated`` on win or death; ``truncated`` when the episode reaches ``max_frames``
  (default 20,000 frames = 5,000 steps at frame skip 4) without terminating, spec §7.3.
* ``params`` (:class:`NppParams`, data, vmapped per env): the frame limit, a fixed ``level``
  and/or a generator ``stage`` (``use_generator`` picks which one a reset uses, so each env can hold a different
  human level, a held-out level, or a stage that generates a fresh level at every reset) and
  the reward weights (``rewards.RewardWeights``).
* Observations (static ``obs_kind``):
    - ``"state"``: float32[40] = game_state (26) + reachability (8) + entity positions (6);
    - ``"state_local"``: float32[40 + 3*13*13] = "state" + solid/mine/goal planes of the
      13 x 13 cells around the ninja (values in [0, 1]) — an MLP's view;
    - ``"grid"``: uint8[10, 25, 44] channels-first (observations.GRID_CHANNELS) — a CNN's view.
  ``env.action_mask(state)`` gives the valid-action mask (bool[A, 6]); it is also in ``info``.

Section marks (§) cite docs/specs/npp.md.
"""

from __future__ import annotations

import copy
import functools

import jax
import jax.numpy as jnp
import numpy as np
from flax import struct
from jax import lax

from envs.base import Box, Discrete, MultiAgentEnv
from envs.npp import generators as G
from envs.npp import observations as O
from envs.npp import rewards as R
from envs.npp.level import Level
from envs.npp.levels import (DEFAULT_GEN_MAX_DOORS, DEFAULT_GEN_MAX_ENTITIES, GEN_ENTITY_TYPES, component_labels, corridor_level,
                             geodesic_distance, cell_of_px)
from envs.npp.sim import TickOptions, action_to_inputs, init_state, tick
from envs.npp.state import SimState

DEFAULT_MAX_FRAMES = 20_000
OBS_KINDS = ("state", "state_local", "grid")
LOCAL_CELLS = 13


@struct.dataclass
class NppParams:
    level: Level | None           # used when use_generator is False (None: generator-only env)
    stage: G.StageParams          # used when use_generator is True
    use_generator: jax.Array      # bool
    reward: R.RewardWeights
    max_frames: jax.Array         # int32 episode frame limit (truncation)


@struct.dataclass
class NppState:
    sim: SimState
    level: Level
    trackers: R.Trackers
    labels: jax.Array             # int32[44, 25] empty-tile components (reachability)
    rstat: dict
    occ: tuple | None             # (half-cell occupancy uint8[50, 88], cell occupancy uint8[25, 44])
    geo: tuple | None             # (geodesic distance to switch, to exit) float32[44, 25]
    steps: jax.Array              # agent steps this episode
    ep_return: jax.Array


class NppEnv(MultiAgentEnv):
    num_agents = 1
    can_truncate = True

    def __init__(self, obs_kind: str = "state", frame_skip: int = 4, max_frames: int = DEFAULT_MAX_FRAMES,
                 max_entities: int = DEFAULT_GEN_MAX_ENTITIES, max_doors: int = DEFAULT_GEN_MAX_DOORS,
                 entity_types=GEN_ENTITY_TYPES, level_source: str = "mixed", geodesic: bool = False,
                 default_stage: str = "simplest", dtype=jnp.float32, tick_options: TickOptions | None = None,
                 task_stages: tuple[str, ...] | None = None, reward_weights: dict | None = None):
        if obs_kind not in OBS_KINDS:
            raise ValueError(f"obs_kind must be one of {OBS_KINDS}, got {obs_kind!r}")
        if level_source not in ("mixed", "fixed", "generator"):
            raise ValueError(f"level_source must be mixed, fixed or generator, got {level_source!r}")
        self.obs_kind = obs_kind
        self.frame_skip = int(frame_skip)
        self.max_frames = int(max_frames) if max_frames else DEFAULT_MAX_FRAMES
        self.max_entities = int(max_entities)
        self.max_doors = int(max_doors)
        self.entity_types = tuple(sorted(set(entity_types)))
        self.level_source = level_source
        self.geodesic = bool(geodesic)
        self.default_stage = default_stage
        unknown = [s for s in (task_stages or ()) if s not in G.STAGE_ORDER]
        if unknown:
            raise ValueError(f"unknown N++ stage(s) {unknown}; stages: {', '.join(G.STAGE_ORDER)}")
        # The stages ``named_tasks`` offers (a curriculum samples them); None: every stage.
        self.task_stages = tuple(s for s in G.STAGE_ORDER if s in task_stages) if task_stages else None
        self.dtype = dtype
        # The reward weights every params this env makes start from (``make_params`` keywords
        # override them); unknown names fail here rather than at the first reset.
        self.reward_weights = dict(reward_weights or {})
        R.default_weights(**self.reward_weights)
        if self.reward_weights.get("geo", 0.0) != 0.0 and not geodesic:
            raise ValueError("reward weight geo needs the geodesic distance field: geodesic=True")
        if tick_options is None:
            tick_options = self.default_tick_options(level_source)
        if not tick_options.is_reference:
            raise ValueError(f"tick_options must be an exact schedule (TickOptions.is_reference), got {tick_options}")
        self.tick_options = tick_options

    @staticmethod
    def default_tick_options(level_source: str, backend: str | None = None) -> TickOptions:
        """The exact schedule for batched (vmapped) envs on ``backend`` (default: JAX's).

        On accelerators, a ``while_loop`` under ``vmap`` runs until its slowest env stops and
        reads its predicate back to the host every iteration; in training some env of a large
        batch almost always needs the full 32 depenetration steps (wall slides into corners)
        while nearly all stop within 3 (CPU, random actions on generated levels: 0.1% of live
        substeps need more). So the batch runs 3 masked steps and only the envs still
        penetrating, gathered into batch/32 lanes, run the rest ("compact"; one predicate read
        per call for the rare overflow), and generated levels (one exit switch) take their
        switch pass without a loop. On CPU a loop iteration costs no round trip: the early-exit
        loops stay (less work, quicker to compile). All are exact."""
        backend = backend or jax.default_backend()
        switch_passes = 1 if level_source == "generator" else 0
        if backend == "cpu":
            return TickOptions(switch_passes=switch_passes)
        return TickOptions(depen_loop="compact", depen_block=3, switch_passes=switch_passes)

    # ------------------------------------------------------------------ params
    def generate_level(self, key, stage) -> Level:
        return G.generate(key, stage, self.max_entities, self.entity_types, self.max_doors)

    def make_params(self, level: Level | None = None, stage: str | G.StageParams | None = None,
                    **reward_weights) -> NppParams:
        """Params for a fixed ``level`` (use_generator False) or a generator ``stage``."""
        st = stage if isinstance(stage, G.StageParams) else G.stage_params(stage or self.default_stage)
        use_gen = level is None
        if level is None and self.level_source != "generator":
            # placeholder fixed level (cheap, host-built); the generator is used
            level = corridor_level(max_entities=self.max_entities, entity_types=self.entity_types,
                                   max_doors=self.max_doors)
        # A "generator" env's params carry no level: every env holds its params, and the
        # rollout selects them at each reset, so a 110 KB placeholder per env was pure traffic.
        if level is not None and (level.entity_types != self.entity_types
                                  or level.max_entities != self.max_entities):
            raise ValueError(f"level has entity_types {level.entity_types} / capacity {level.max_entities}; "
                             f"this env needs {self.entity_types} / {self.max_entities}")
        return NppParams(level=level, stage=st, use_generator=jnp.asarray(use_gen),
                         reward=R.default_weights(**{**self.reward_weights, **reward_weights}),
                         max_frames=jnp.int32(self.max_frames))

    @functools.cached_property
    def _default_params(self):
        return self.make_params(stage=self.default_stage)

    @property
    def default_params(self) -> NppParams:
        return self._default_params

    @property
    def max_episode_steps(self) -> int:
        return -(-self.max_frames // self.frame_skip)

    def named_tasks(self) -> dict:
        """``{stage: params}`` of ``task_stages`` (default every stage, spec §10.1 order),
        generator mode."""
        stages = self.curriculum_stages()
        return {s: p for s, p in stages.items() if self.task_stages is None or s in self.task_stages}

    def stage_thresholds(self) -> dict:
        """The staged curriculum's per-stage (advance, min episodes, regression) table, §10.1."""
        return dict(G.STAGE_THRESHOLDS)

    def curriculum_stages(self) -> dict:
        """Every stage in spec §10.1 order (the staged curriculum's ladder), generator mode."""
        base = self.default_params
        return {s: base.replace(stage=G.stage_params(s), use_generator=jnp.asarray(True)) for s in G.STAGE_ORDER}

    def heldout_params(self, stage: str, n: int, seed: int | None = None) -> NppParams:
        """``n`` fixed held-out levels of ``stage`` as params stacked on axis 0 (deterministic)."""
        return self.level_params(G.heldout_set(stage, n, self.max_entities, self.entity_types, self.max_doors, seed))

    def eval_sets(self, episodes: int, seed: int | None = None) -> tuple["NppEnv", dict]:
        """Held-out evaluation: ``{stage: episodes fixed levels}`` for every stage of
        ``named_tasks()`` (the spec's per-stage test seeds; ``seed`` is unused because the
        held-out sets are fixed), played by a copy of this env that reads ``params.level``."""
        fixed = copy.copy(self)   # keeps the tick schedule: held-out levels are generated (one exit switch)
        fixed.level_source = "fixed"
        return fixed, {stage: self.heldout_params(stage, episodes) for stage in self.named_tasks()}

    def level_params(self, levels: Level) -> NppParams:
        """Stacked fixed levels (e.g. ``levels.load_levels`` of human maps) -> stacked params."""
        base = self.default_params
        return jax.vmap(lambda lv: base.replace(level=lv, use_generator=jnp.asarray(False)))(levels)

    # ------------------------------------------------------------------ spaces
    def observation_space(self, params=None) -> Box:
        if self.obs_kind == "grid":
            return Box(0, 255, (O.NUM_GRID_CHANNELS, O.GRID_H, O.GRID_W), jnp.uint8)
        n = O.GAME_STATE_DIM + O.REACH_DIM + O.ENTITY_POS_DIM
        if self.obs_kind == "state_local":
            n += 3 * LOCAL_CELLS * LOCAL_CELLS
        return Box(-1.0, 1.0, (n,), jnp.float32)

    @property
    def obs_scale(self):
        """Per-channel scale the policy applies to grid observations (uint8 0..255 -> [0, 1]);
        None for the vector observations, which are already in [-1, 1]."""
        return np.full(O.NUM_GRID_CHANNELS, 1 / 255, np.float32) if self.obs_kind == "grid" else None

    def action_space(self, params=None) -> Discrete:
        return Discrete(6)

    # ------------------------------------------------------------------ reset / step
    def _pick_level(self, key, params: NppParams) -> Level:
        if self.level_source == "fixed":
            return params.level
        gen = self.generate_level(key, params.stage)
        if self.level_source == "generator":
            return gen
        return jax.tree.map(lambda g, f: jnp.where(params.use_generator, g, f), gen, params.level)

    def reset_env(self, key, params: NppParams):
        with jax.named_scope("level"):
            level = self._pick_level(key, params)
        sim = init_state(level, self.dtype)
        passable = level.tiles.astype(jnp.int32) == 0
        labels = component_labels(passable)
        rstat = O.reach_static(level, labels)
        occ = O.static_grids(level) if self.obs_kind != "state" else None
        sw, door = O.goal_positions(sim, level)
        if self.geodesic:
            geo = tuple(geodesic_distance(passable, self._cell_mask(p)) for p in (sw, door))
            gsw, gex = geo
        else:
            geo = None
            gsw = gex = jnp.zeros((44, 25), jnp.float32)
        pos = jnp.stack([sim.ninja.x, sim.ninja.y]).astype(jnp.float32)
        tr = R.init_trackers(pos, sw, door, gsw, gex)
        state = NppState(sim=sim, level=level, trackers=tr, labels=labels, rstat=rstat, occ=occ, geo=geo,
                         steps=jnp.int32(0), ep_return=jnp.float32(0))
        return self._obs(state), state

    @staticmethod
    def _cell_mask(p):
        cx, cy = cell_of_px(p)
        return jnp.zeros((44, 25), bool).at[cx, cy].set(True)

    def _frames(self, sim: SimState, level: Level, hor, jump):
        def body(carry, _):
            s, done, n = carry
            new = tick(s, level, hor, jump, self.tick_options)
            s = jax.tree.map(lambda a, b: jnp.where(done, a, b), s, new)
            n = n + (~done).astype(jnp.int32)
            done = done | s.won | s.dead
            return (s, done, n), None

        done0 = sim.won | sim.dead
        (sim, _, n), _ = lax.scan(body, (sim, done0, jnp.int32(0)), None, length=self.frame_skip)
        return sim, n

    def step_env(self, key, state: NppState, action, params: NppParams):
        a = jnp.asarray(action).reshape(-1)[0]
        hor, jump = action_to_inputs(a)
        level = state.level
        with jax.named_scope("frames"):
            sim, n_frames = self._frames(state.sim, level, hor, jump)
        won, dead = sim.won, sim.dead
        with jax.named_scope("reward"):
            sw, door = O.goal_positions(sim, level)
            pos = jnp.stack([sim.ninja.x, sim.ninja.y]).astype(jnp.float32)
            gsw, gex = state.geo if state.geo is not None else (jnp.zeros((44, 25)), jnp.zeros((44, 25)))
            r, tr, _ = R.step_reward(params.reward, state.trackers, pos, sw, door, sim.switch_hit, won, dead,
                                     gsw, gex)
        terminated = won | dead
        truncated = (sim.frame >= params.max_frames) & ~terminated
        state = state.replace(sim=sim, trackers=tr, steps=state.steps + 1, ep_return=state.ep_return + r)
        info = {"frames_executed": n_frames[None], "action_mask": O.action_mask(sim)[None]}
        with jax.named_scope("observation"):
            obs = self._obs(state)
        return obs, state, r[None], terminated[None], truncated[None], info

    # ------------------------------------------------------------------ observations
    def _state_vec(self, state: NppState):
        sim, level = state.sim, state.level
        return jnp.concatenate([O.game_state(sim, level), O.reachability(sim, level, state.labels, state.rstat),
                                O.entity_positions(sim, level)])

    def _local_planes(self, state: NppState):
        sim, level = state.sim, state.level
        k = LOCAL_CELLS
        cx, cy = cell_of_px(jnp.stack([sim.ninja.x, sim.ninja.y]).astype(jnp.float32))
        cell_occ = state.occ[1]
        padded = jnp.pad(cell_occ, ((k, k), (k, k)), constant_values=255)
        solid = lax.dynamic_slice(padded, (cy - k // 2 + k, cx - k // 2 + k), (k, k))
        oy = (cy - k // 2).astype(jnp.float32) * 24
        ox = (cx - k // 2).astype(jnp.float32) * 24
        mine, goal, _ = O._entity_planes(sim, level, k, k, 24.0, oy, ox)
        return jnp.stack([solid, mine, goal]).astype(jnp.float32).reshape(-1) / 255.0

    def _obs(self, state: NppState):
        vec = self._state_vec(state)
        if self.obs_kind == "state":
            return vec[None]
        if self.obs_kind == "state_local":
            return jnp.concatenate([vec, self._local_planes(state)])[None]
        qvec = vec.at[O.GAME_STATE_DIM:O.GAME_STATE_DIM + O.REACH_DIM].multiply(2.0)
        qvec = qvec.at[O.GAME_STATE_DIM:O.GAME_STATE_DIM + O.REACH_DIM].add(-1.0)
        g = O.grid(state.sim, state.level, state.occ[0], state.occ[1], state.trackers.visit1,
                   qvec[:O.GAME_STATE_DIM + O.REACH_DIM])
        return g[None]

    def action_mask(self, state: NppState):
        return O.action_mask(state.sim)[None]

    def episode_stats(self, state: NppState):
        sim = state.sim
        f = lambda x: jnp.asarray(x, jnp.float32)[None]
        return {"success": f(sim.won), "death": f(sim.dead), "switch_activated": f(sim.switch_hit),
                "frames": f(sim.frame), "steps": f(state.steps)}


def make_npp_env(env_cfg=None) -> NppEnv:
    """Build an :class:`NppEnv` from a config-like object (attributes read with ``getattr``):

    ``max_steps`` (episode frame limit; 0/None -> 20,000), ``obs_kind`` ("state",
    "state_local", "grid"; the trainer's generic "dense" means "grid", "tokens" is refused),
    ``npp_obs`` (overrides obs_kind), ``frame_skip`` (4), ``max_entities`` (48),
    ``max_doors`` (1), ``entity_types`` (generated types (1, 3, 4); "all" for every N++ type),
    ``level_source`` ("mixed"), ``geodesic`` (False), ``npp_stage`` / ``stage`` (default stage,
    "simplest"), ``task_stages`` (the stages ``named_tasks`` offers; None: all), and reward
    weights ``reward_<name>`` for the fields of ``RewardWeights``
    (win, death, switch, time, nav, explore, pbrs, gamma, geo).
    """
    g = lambda name, default=None: getattr(env_cfg, name, default) if env_cfg is not None else default
    obs = g("npp_obs") or g("obs_kind") or "state"
    obs = {"dense": "grid"}.get(obs, obs)
    et = g("entity_types") or GEN_ENTITY_TYPES
    if et == "all":
        from envs.npp.level import ALL_ENTITY_TYPES
        et = ALL_ENTITY_TYPES
    env = NppEnv(obs_kind=obs, frame_skip=int(g("frame_skip") or 4), max_frames=int(g("max_steps") or 0),
                 max_entities=int(g("max_entities") or DEFAULT_GEN_MAX_ENTITIES),
                 max_doors=int(g("max_doors") or DEFAULT_GEN_MAX_DOORS), entity_types=et,
                 level_source=g("level_source") or "mixed", geodesic=bool(g("geodesic") or False),
                 default_stage=g("npp_stage") or g("stage") or "simplest",
                 task_stages=g("task_stages"),
                 reward_weights={name: float(g(f"reward_{name}")) for name in R.RewardWeights.__dataclass_fields__
                                 if g(f"reward_{name}") is not None})
    return env
