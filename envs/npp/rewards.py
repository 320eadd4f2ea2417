"""Rewards of the N++ environment (spec §9, brief-era defaults; every weight is data).

Per agent step (computed once per step from the state before its first frame to the state after
its last executed frame, spec §9.5)::

    if dead:  r = w_death                                                  (-0.5; nothing else)
    else:     r = w_time                                                   (-0.01)
                + w_switch  [switch activated this step]                   (+0.1)
                + w_win     [won this step]                                (+1.0)
                + w_nav     * (improvement + potential difference)         (§9.2, x1)
                + w_explore * 0.001 * (new cells at 1/4/8/16-cell scales)   (§9.3, x1)
                + w_pbrs    * (gamma * Phi(s') - Phi(s))                   (§9.4, x1, gamma 0.99)
                + w_geo     * (gamma * Phi_geo(s') - Phi_geo(s))           (optional, default 0)

``d_goal`` = Euclidean distance from the ninja to the exit switch before activation and to the
exit door after. ``Phi = 0.05 (1 - min(1, d_goal / 1214.55))``. ``Phi_geo`` uses the geodesic
cell distance over the empty-tile graph (computed once per level at reset, only when the env is
built with ``geodesic=True``): ``0.05 (1 - min(1, d_geo / 100))``.

Deviation from the reference (deliberate, documented): the reference's trackers initialise on
the first *step* (so step 1 pays no navigation/PBRS reward); here they initialise at *reset*
from the spawn observation, so every step's shaping is a true difference of potentials. The
first step still pays the four first-visit exploration bonuses (+0.004), as in the reference.

Section marks (§) cite docs/specs/npp.md.
"""

from __future__ import annotations

import jax.numpy as jnp
from flax import struct

DIAG = 1214.55
NAV_SCALE = DIAG / 4       # 303.64
EXPLORE_SCALES = (1, 4, 8, 16)
EXPLORE_SHAPES = tuple(((44 + s - 1) // s, (25 + s - 1) // s) for s in EXPLORE_SCALES)


@struct.dataclass
class RewardWeights:
    win: jnp.ndarray
    death: jnp.ndarray
    switch: jnp.ndarray
    time: jnp.ndarray
    nav: jnp.ndarray
    explore: jnp.ndarray
    pbrs: jnp.ndarray
    gamma: jnp.ndarray
    geo: jnp.ndarray


def default_weights(**kw) -> RewardWeights:
    vals = dict(win=1.0, death=-0.5, switch=0.1, time=-0.01, nav=1.0, explore=1.0, pbrs=1.0, gamma=0.99, geo=0.0)
    vals.update(kw)
    return RewardWeights(**{k: jnp.float32(v) for k, v in vals.items()})


@struct.dataclass
class Trackers:
    closest: jnp.ndarray      # closest distance so far to the current goal
    phi_nav: jnp.ndarray
    phi_pbrs: jnp.ndarray
    phi_geo: jnp.ndarray
    switch_hit: jnp.ndarray   # bool: as of the previous step
    visit1: jnp.ndarray       # bool[44, 25]
    visit4: jnp.ndarray       # bool[11, 7]
    visit8: jnp.ndarray       # bool[6, 4]
    visit16: jnp.ndarray      # bool[3, 2]


def phi_nav(d):
    return 0.0005 * (1 - d / NAV_SCALE) + jnp.where(d < 20, 0.00025, 0.0)


def phi_pbrs(d):
    return 0.05 * (1 - jnp.minimum(1.0, d / DIAG))


def phi_geo(dg):
    return 0.05 * (1 - jnp.minimum(1.0, dg / 100.0))


def goal_distance(pos, sw_pos, exit_pos, switch_hit):
    g = jnp.where(switch_hit, exit_pos, sw_pos)
    return jnp.sqrt(jnp.sum((pos - g) ** 2))


def geo_distance(pos, geo_sw, geo_exit, switch_hit):
    cx = jnp.clip(jnp.floor(pos[0] / 24), 0, 43).astype(jnp.int32)
    cy = jnp.clip(jnp.floor(pos[1] / 24), 0, 24).astype(jnp.int32)
    d = jnp.where(switch_hit, geo_exit[cx, cy], geo_sw[cx, cy])
    return jnp.where(jnp.isfinite(d), d, 100.0)


def init_trackers(pos, sw_pos, exit_pos, geo_sw, geo_exit) -> Trackers:
    d = goal_distance(pos, sw_pos, exit_pos, jnp.array(False))
    dg = geo_distance(pos, geo_sw, geo_exit, jnp.array(False))
    z = lambda s: jnp.zeros(s, bool)
    return Trackers(closest=d, phi_nav=phi_nav(d), phi_pbrs=phi_pbrs(d), phi_geo=phi_geo(dg),
                    switch_hit=jnp.array(False), visit1=z(EXPLORE_SHAPES[0]), visit4=z(EXPLORE_SHAPES[1]),
                    visit8=z(EXPLORE_SHAPES[2]), visit16=z(EXPLORE_SHAPES[3]))


def step_reward(w: RewardWeights, tr: Trackers, pos, sw_pos, exit_pos, switch_hit, won, dead, geo_sw, geo_exit):
    """(reward float32, new trackers, terms dict) for one agent step ending at ``pos``."""
    activated = switch_hit & ~tr.switch_hit
    d = goal_distance(pos, sw_pos, exit_pos, switch_hit)
    # navigation: closest-so-far improvement (none on the activation step) + undiscounted potential
    improve = jnp.where(~activated & (d < tr.closest), 0.0001 * (tr.closest - d), 0.0)
    closest = jnp.where(activated, d, jnp.minimum(tr.closest, d))
    pn = phi_nav(d)
    nav = improve + pn - tr.phi_nav
    # exploration: grids reset when the switch activates, before this step's bonus
    cx = jnp.clip(jnp.floor(pos[0] / 24), 0, 43).astype(jnp.int32)
    cy = jnp.clip(jnp.floor(pos[1] / 24), 0, 24).astype(jnp.int32)
    grids = [tr.visit1, tr.visit4, tr.visit8, tr.visit16]
    new_grids, explore = [], 0.0
    for g, s in zip(grids, EXPLORE_SCALES):
        g = jnp.where(activated, jnp.zeros_like(g), g)
        first = ~g[cx // s, cy // s]
        explore = explore + jnp.where(first, 0.001, 0.0)
        new_grids.append(g.at[cx // s, cy // s].set(True))
    pp = phi_pbrs(d)
    pbrs = w.gamma * pp - tr.phi_pbrs
    dg = geo_distance(pos, geo_sw, geo_exit, switch_hit)
    pg = phi_geo(dg)
    geo = w.gamma * pg - tr.phi_geo
    alive = (w.time + w.switch * activated + w.win * won + w.nav * nav + w.explore * explore + w.pbrs * pbrs
             + w.geo * geo)
    r = jnp.where(dead, w.death, alive).astype(jnp.float32)
    tr = Trackers(closest=closest, phi_nav=pn, phi_pbrs=pp, phi_geo=pg, switch_hit=switch_hit,
                  visit1=new_grids[0], visit4=new_grids[1], visit8=new_grids[2], visit16=new_grids[3])
    terms = dict(nav=nav, explore=explore, pbrs=pbrs, geo=geo, activated=activated)
    return r, tr, terms
