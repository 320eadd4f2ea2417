"""Every constant of the N++ level dynamics (nclone 076db764, spec npp.md §1-§6).

Values are written exactly as nclone evaluates them in float64 (e.g. ``2 / 3`` is the Python
float 0.6666666666666666), because bit-exact float64 replay depends on it.

Section marks (§) cite docs/specs/npp.md; FORMAT.md is tests/data/golden/npp/FORMAT.md.
"""

from __future__ import annotations

import math

import numpy as np

# ----------------------------------------------------------------------------- grid (§1.1)
CELL = 24                     # px per cell
GRID_W, GRID_H = 44, 25       # padded grid (42 x 23 playfield + 1-cell solid border)
INNER_W, INNER_H = 42, 23
HALF_W, HALF_H = 89, 51       # 12 px half-cell lattice keys (kx 0..88, ky 0..50)
HALF_CELL = 12                # px per half-cell: the lattice of the grid-edge tables (§6.4.2)
EDGE_KX_MAX, EDGE_KY_MAX = HALF_W - 2, HALF_H - 2   # grid-edge queries clamp their keys to these (§6.4.2)
UNIT = 6                      # px per map position unit

# ----------------------------------------------------------------------------- map layout (§1.2)
MAP_TILES_OFFSET = 184
MAP_EXIT_DOOR_COUNT = 1156
MAP_DEATH_BALL_COUNT = 1200
MAP_NINJA_RECORD = 1230
MAP_MIN_LEN = 1235
NUM_TILE_IDS = 38
MAX_ENTITY_TYPE = 28          # N++ entity type ids are 0..28; larger values are malformed

# ----------------------------------------------------------------------------- ninja (§3.1)
NINJA_RADIUS = 10
GRAVITY_FALL = 0.06666666666666665
GRAVITY_JUMP = 0.01111111111111111
GROUND_ACCEL = 0.06666666666666665
AIR_ACCEL = 0.04444444444444444
DRAG_REGULAR = 0.9933221725495059
DRAG_SLOW = 0.8617738760127536
FRICTION_GROUND = 0.9459290248857720
FRICTION_GROUND_SLOW = 0.8617738760127536
FRICTION_WALL = 0.9113380468927672
MAX_HOR_SPEED = 3.333
MAX_JUMP_DURATION = 45
MAX_SURVIVABLE_IMPACT = 6
MIN_SURVIVABLE_CRUSHING = 0.05
DEPEN_ITERATIONS = 32          # reference cap of the tile depenetration loop
SUBSTEPS = 4

JUMP_FLAT_GROUND_Y = -2
JUMP_SLOPE_DOWNHILL_X = 2 / 3
JUMP_SLOPE_DOWNHILL_Y = 2
JUMP_SLOPE_DOWNHILL_OPPOSITE_Y = -1.4
JUMP_SLOPE_UPHILL_FORWARD_Y = -1.4
JUMP_SLOPE_UPHILL_PERP_X = 2 / 3
JUMP_SLOPE_UPHILL_PERP_Y = 2
JUMP_WALL_SLIDE_X = 2 / 3
JUMP_WALL_SLIDE_Y = -1
JUMP_WALL_REGULAR_X = 1
JUMP_WALL_REGULAR_Y = -1.4
JUMP_LAUNCH_PAD_BOOST_SCALAR = 1.7
JUMP_LAUNCH_PAD_BOOST_FACTOR = 2 / 3

# Movement states (§3.2).
ST_IMMOBILE, ST_RUNNING, ST_SLIDING, ST_JUMPING, ST_FALLING, ST_WALL_SLIDING = 0, 1, 2, 3, 4, 5
ST_DEAD, ST_AWAITING_DEATH, ST_CELEBRATING, ST_DISABLED = 6, 7, 8, 9

# jump_event codes recorded per tick (FORMAT.md §5)
JUMP_NONE, JUMP_FLOOR, JUMP_WALL, JUMP_WALL_SLIDE, JUMP_LAUNCH_PAD = 0, 1, 2, 3, 4

# ----------------------------------------------------------------------------- entities (§6)
T_MINE, T_GOLD, T_EXIT, T_SWITCH, T_DOOR_REGULAR, T_DOOR_LOCKED = 1, 2, 3, 4, 5, 6
T_DOOR_TRAP, T_LAUNCH_PAD, T_ONE_WAY, T_DRONE_ZAP, T_BOUNCE_BLOCK = 8, 10, 11, 14, 17
T_THWUMP, T_MINE_SAFE, T_BOOST_PAD, T_DEATH_BALL, T_DRONE_MINI, T_SHOVE_THWUMP = 20, 21, 24, 25, 26, 28
# Types that the loader instantiates (everything else in 0..28 is skipped, as in nclone).
INSTANTIATED_TYPES = (T_MINE, T_GOLD, T_EXIT, T_DOOR_REGULAR, T_DOOR_LOCKED, T_DOOR_TRAP, T_LAUNCH_PAD, T_ONE_WAY,
                      T_DRONE_ZAP, T_BOUNCE_BLOCK, T_THWUMP, T_MINE_SAFE, T_BOOST_PAD, T_DEATH_BALL, T_DRONE_MINI,
                      T_SHOVE_THWUMP)

# Entity state codes (``Entities.state``; FORMAT.md §5 ``ent_state`` table).
MINE_TOGGLED, MINE_UNTOGGLED, MINE_TOGGLING = 0, 1, 2       # toggle mine: deadly, safe, arming (§6.4.3)
EXIT_DOOR_SWITCH_HIT = 1      # exit door whose switch was hit (only then is it in the entity grid, §6.4.3)
# Thwump (§6.4.5); the move step multiplies the facing by the state, so the codes must stay -1/0/1.
THWUMP_RETREATING, THWUMP_REST, THWUMP_CHARGING = -1, 0, 1
SHWUMP_REST, SHWUMP_ARMED, SHWUMP_LAUNCHING, SHWUMP_RETREATING = 0, 1, 2, 3   # shove thwump (§6.4.5)

MINE_RADII = (4.0, 3.5, 4.5)          # indexed by mine state (toggled, untoggled, toggling)
GOLD_RADIUS = 6
EXIT_RADIUS = 12
SWITCH_RADIUS = 6
DOOR_SWITCH_RADIUS = 5
REGULAR_DOOR_RADIUS = 10
REGULAR_DOOR_OPEN_FRAMES = 5  # a regular door closes once its open_timer exceeds this (§6.4.4)
LAUNCH_PAD_RADIUS = 6
LAUNCH_PAD_BOOST = 36 / 7
LAUNCH_PAD_MIN_FACING = -0.1  # the ninja must not be behind the pad by more than this (§6.4.3)
BOOST_PAD_RADIUS = 6
BOOST_PAD_SPEEDUP = 2         # px/frame a boost pad adds along the ninja's velocity (§6.4.3)
LOGICAL_SEMI_PAD = 0.1        # logical square tests reach this much past the physical ones (§6.4.1)
ONE_WAY_SEMI = 12
# One-way lateral reach is factor * ninja radius + semi; the larger factor when moving toward the
# platform's centre line (§6.4.5).
ONE_WAY_REACH_TOWARD, ONE_WAY_REACH_AWAY = 0.91, 0.51
ONE_WAY_MAX_OLD_DEPTH = 1.1   # largest penetration of the previous frame that a one-way pushes back
BOUNCE_SEMI = 9
BOUNCE_DAMPING = 0.98         # bounce-block velocity kept per frame (§6.4.5)
BOUNCE_STIFFNESS = 0.02222222222222222   # spring pull toward the origin per px of offset
BOUNCE_BLOCK_SHARE, BOUNCE_NINJA_SHARE = 0.8, 0.2   # split of a collision's depenetration
THWUMP_SEMI = 9
THWUMP_FORWARD_SPEED = 20 / 7
THWUMP_BACKWARD_SPEED = 8 / 7
THWUMP_FACE = 11              # px from a thwump's centre to the faces its grid-edge tests use (§6.4.5)
THWUMP_SIGHT_STEPS = 100      # half-cells a resting thwump scans for line of sight (§6.4.5)
SHWUMP_SEMI = 12
SHWUMP_CORE_RADIUS = 8        # also the half-width of a shove thwump's grid-edge step test
SHWUMP_LAUNCH_SPEED, SHWUMP_RETREAT_SPEED = 4, 1    # px/frame (§6.4.5)
SHWUMP_MIN_SIDE_OVERLAP = 0.2  # first contact activates (stores its normal) only with more overlap on the other axis
SHWUMP_MIN_SIDE_DOT = 0.01     # armed: only contacts on the touched side (normal . m >= this) count
SHWUMP_HOME_DIST = 1           # a retreating shove thwump snaps home below this Manhattan distance
DRONE_RADIUS = {T_DRONE_ZAP: 7.5, T_DRONE_MINI: 4.0}
DRONE_GRID = {T_DRONE_ZAP: 24, T_DRONE_MINI: 12}
DRONE_SPEED = {T_DRONE_ZAP: 8 / 7, T_DRONE_MINI: 1.3}
DRONE_ARRIVE_EPS = 0.000001   # a drone closer than this to its target has arrived (§6.4.6)
DEATH_BALL_RADIUS_NINJA = 5
DEATH_BALL_RADIUS_TILES = 8
# Death ball (§6.4.7): steering, speed cap, sweep, depenetration, bounce and ball-ball push.
DEATH_BALL_ACCEL = 0.04           # per frame, toward the ninja
DEATH_BALL_MAX_SPEED = 0.85
DEATH_BALL_EXCESS_KEEP = 0.9      # fraction of the speed above the cap that is kept ...
DEATH_BALL_EXCESS_MIN = 0.01      # ... unless it is at most this
DEATH_BALL_IDLE_DRAG = 0.95       # velocity kept per frame without a valid target
DEATH_BALL_SWEEP_RADIUS = 4
DEATH_BALL_SWEEP_MARGIN = 5       # px around the swept box for the segment gather
DEATH_BALL_DEPEN_ITERATIONS = 16
DEATH_BALL_MIN_PEN = 0.0000001    # depenetration stops below this penetration
DEATH_BALL_SLOW_BOUNCE = 1.35     # at or below this speed a bounce only cancels the inward velocity
DEATH_BALL_PUSH_DIST = 16         # balls closer than this push each other apart ...
DEATH_BALL_PUSH = 4               # ... by this much velocity
DEATH_BALL_KICK = 10              # velocity a ball gains from touching the ninja

DIAG = math.sqrt(2) / 2
ORIENT_VEC = np.array([(1, 0), (DIAG, DIAG), (0, 1), (-DIAG, DIAG),
                       (-1, 0), (-DIAG, -DIAG), (0, -1), (DIAG, -DIAG)], dtype=np.float64)
# Drone directions: right, down, left, up; preference offsets per patrol mode (§6.4.6).
DRONE_DIRS = np.array([(1, 0), (0, 1), (-1, 0), (0, -1)], dtype=np.int32)
DRONE_PREF = np.array([[1, 0, 3, 2], [3, 0, 1, 2], [0, 1, 3, 2], [0, 3, 1, 2]], dtype=np.int32)

# ----------------------------------------------------------------------------- tiles (§2.4)
# Signed half-edge contributions in lattice order
# [H r0c0, r0c1, r1c0, r1c1, r2c0, r2c1, V c0r0, c0r1, c1r0, c1r1, c2r0, c2r1].
_CONTRIB_TEXT = """
 1: - - 0 0 + +  - - 0 0 + +     2: - - + + 0 0  - 0 0 0 + 0     3: 0 - 0 0 0 +  0 0 - - + +
 4: 0 0 - - + +  0 - 0 0 0 +     5: - 0 0 0 + 0  - - + + 0 0     6: - - 0 0 0 0  - - 0 0 0 0
 7: - - 0 0 0 0  0 0 0 0 + +     8: 0 0 0 0 + +  0 0 0 0 + +     9: 0 0 0 0 + +  - - 0 0 0 0
10: - - 0 0 0 0  - - 0 0 0 0    11: - - 0 0 0 0  0 0 0 0 + +    12: 0 0 0 0 + +  0 0 0 0 + +
13: 0 0 0 0 + +  - - 0 0 0 0    14: - - 0 0 0 0  - - 0 0 0 0    15: - - 0 0 0 0  0 0 0 0 + +
16: 0 0 0 0 + +  0 0 0 0 + +    17: 0 0 0 0 + +  - - 0 0 0 0    18: - - 0 0 0 0  - 0 0 0 0 0
19: - - 0 0 0 0  0 0 0 0 + 0    20: 0 0 0 0 + +  0 0 0 0 0 +    21: 0 0 0 0 + +  0 - 0 0 0 0
22: - - 0 0 0 0  - - 0 0 + 0    23: - - 0 0 0 0  - 0 0 0 + +    24: 0 0 0 0 + +  0 - 0 0 + +
25: 0 0 0 0 + +  - - 0 0 0 +    26: - 0 0 0 0 0  - - 0 0 0 0    27: 0 - 0 0 0 0  0 0 0 0 + +
28: 0 0 0 0 0 +  0 0 0 0 + +    29: 0 0 0 0 + 0  - - 0 0 0 0    30: - - 0 0 + 0  - - 0 0 0 0
31: - - 0 0 0 +  0 0 0 0 + +    32: 0 - 0 0 + +  0 0 0 0 + +    33: - 0 0 0 + +  - - 0 0 0 0
34: - - 0 0 0 0  0 0 0 0 0 0    35: 0 0 0 0 0 0  0 0 0 0 + +    36: 0 0 0 0 + +  0 0 0 0 0 0
37: 0 0 0 0 0 0  - - 0 0 0 0
"""

# Grid-edge bits (XOR tables for drone/thwump line of sight, §6.4.2), same lattice order.
_EDGE_BITS_TEXT = """
 0: 0 0 0 0 0 0  0 0 0 0 0 0     1: 1 1 0 0 1 1  1 1 0 0 1 1     2: 1 1 1 1 0 0  1 0 0 0 1 0
 3: 0 1 0 0 0 1  0 0 1 1 1 1     4: 0 0 1 1 1 1  0 1 0 0 0 1     5: 1 0 0 0 1 0  1 1 1 1 0 0
 6: 1 1 0 1 1 0  1 1 0 1 1 0     7: 1 1 1 0 0 1  1 0 0 1 1 1     8: 0 1 1 0 1 1  0 1 1 0 1 1
 9: 1 0 0 1 1 1  1 1 1 0 0 1    10: 1 1 0 0 1 1  1 1 0 0 1 1    11: 1 1 0 0 1 1  1 1 0 0 1 1
12: 1 1 0 0 1 1  1 1 0 0 1 1    13: 1 1 0 0 1 1  1 1 0 0 1 1    14: 1 1 0 1 1 0  1 1 0 1 1 0
15: 1 1 1 0 0 1  1 0 0 1 1 1    16: 0 1 1 0 1 1  0 1 1 0 1 1    17: 1 0 0 1 1 1  1 1 1 0 0 1
18: 1 1 1 1 0 0  1 0 0 0 1 0    19: 1 1 1 1 0 0  1 0 0 0 1 0    20: 0 0 1 1 1 1  0 1 0 0 0 1
21: 0 0 1 1 1 1  0 1 0 0 0 1    22: 1 1 0 0 1 1  1 1 0 0 1 1    23: 1 1 0 0 1 1  1 1 0 0 1 1
24: 1 1 0 0 1 1  1 1 0 0 1 1    25: 1 1 0 0 1 1  1 1 0 0 1 1    26: 1 0 0 0 1 0  1 1 1 1 0 0
27: 0 1 0 0 0 1  0 0 1 1 1 1    28: 0 1 0 0 0 1  0 0 1 1 1 1    29: 1 0 0 0 1 0  1 1 1 1 0 0
30: 1 1 0 0 1 1  1 1 0 0 1 1    31: 1 1 0 0 1 1  1 1 0 0 1 1    32: 1 1 0 0 1 1  1 1 0 0 1 1
33: 1 1 0 0 1 1  1 1 0 0 1 1    34: 1 1 0 0 0 0  0 0 0 0 0 0    35: 0 0 0 0 0 0  0 0 0 0 1 1
36: 0 0 0 0 1 1  0 0 0 0 0 0    37: 0 0 0 0 0 0  1 1 0 0 0 0
"""


def _parse_table(text: str) -> np.ndarray:
    table = np.zeros((NUM_TILE_IDS, 12), dtype=np.int32)
    sym = {"-": -1, "0": 0, "+": 1, "1": 1}
    tokens = text.split()
    i = 0
    while i < len(tokens):
        tid = int(tokens[i].rstrip(":"))
        table[tid] = [sym[t] for t in tokens[i + 1:i + 13]]
        i += 13
    return table


TILE_HALF_EDGES = _parse_table(_CONTRIB_TEXT)      # int32[38, 12], signs -1/0/+1
TILE_GRID_EDGE_BITS = _parse_table(_EDGE_BITS_TEXT)  # int32[38, 12], bits 0/1

# The non-orthogonal segment of each tile id, tile-local px:
# kind 0 none, 1 line p1->p2 (x1, y1, x2, y2), 2 arc (cx, cy, hor, ver) with a convex flag.
TILE_NONORTH = np.zeros((NUM_TILE_IDS, 6), dtype=np.int32)   # kind, a, b, c, d, convex
for _tid, _row in {
    6: (1, 0, 24, 24, 0, 0), 7: (1, 0, 0, 24, 24, 0), 8: (1, 24, 0, 0, 24, 0), 9: (1, 24, 24, 0, 0, 0),
    10: (2, 0, 0, 1, 1, 1), 11: (2, 24, 0, -1, 1, 1), 12: (2, 24, 24, -1, -1, 1), 13: (2, 0, 24, 1, -1, 1),
    14: (2, 24, 24, -1, -1, 0), 15: (2, 0, 24, 1, -1, 0), 16: (2, 0, 0, 1, 1, 0), 17: (2, 24, 0, -1, 1, 0),
    18: (1, 0, 12, 24, 0, 0), 19: (1, 0, 0, 24, 12, 0), 20: (1, 24, 12, 0, 24, 0), 21: (1, 24, 24, 0, 12, 0),
    22: (1, 0, 24, 24, 12, 0), 23: (1, 0, 12, 24, 24, 0), 24: (1, 24, 0, 0, 12, 0), 25: (1, 24, 12, 0, 0, 0),
    26: (1, 0, 24, 12, 0, 0), 27: (1, 12, 0, 24, 24, 0), 28: (1, 24, 0, 12, 24, 0), 29: (1, 12, 24, 0, 0, 0),
    30: (1, 12, 24, 24, 0, 0), 31: (1, 0, 0, 12, 24, 0), 32: (1, 12, 0, 0, 24, 0), 33: (1, 24, 24, 12, 0, 0),
}.items():
    TILE_NONORTH[_tid] = _row

SEG_SLOTS = 8          # tile segments per cell (tile 1 has 8, every other id <= 7)
ARC_RADIUS = 24


def _segment_kinds():
    """Every segment a cell slot can hold, as a small static table (a level stores only the
    kind per slot, ``int8``, -1 = empty; tiles.build_tile_geometry picks the kinds):

    * kinds ``0 .. NUM_TILE_IDS-1``: tile id ``k``'s own non-orthogonal segment;
    * kinds ``NUM_TILE_IDS + 2 * (c - 1) + (s == 1)`` for half-edge candidate ``c`` in 1..12
      (1..6 horizontal with column 0..1 outer / row 0..2 inner, 7..12 vertical with column
      0..2 outer / row 0..1 inner) and the sign ``s`` of its half-edge sum.

    Returns ``local int32[K, 4]`` (tile-local px), ``shift int32[K, 4]`` (1 where the cell's
    origin ``24 * (cx, cy, cx, cy)`` is added: not to an arc's quadrant), ``arc bool[K]``,
    ``convex bool[K]``."""
    n = NUM_TILE_IDS + 24
    local = np.zeros((n, 4), np.int32)
    shift = np.ones((n, 4), np.int32)
    arc = np.zeros(n, bool)
    convex = np.zeros(n, bool)
    for t in range(NUM_TILE_IDS):
        kind, a, b, c, d, cv = TILE_NONORTH[t]
        local[t] = (a, b, c, d)
        arc[t] = kind == 2
        convex[t] = cv == 1
        if kind == 2:
            shift[t, 2:] = 0
    for cand in range(1, 13):
        for pos in (0, 1):
            k = NUM_TILE_IDS + 2 * (cand - 1) + pos
            if cand <= 6:      # horizontal half-edge at column c, row r of the cell's lattice
                c, r = divmod(cand - 1, 3)
                x0, y = 12 * c, 12 * r
                local[k] = (x0, y, x0 + 12, y) if pos else (x0 + 12, y, x0, y)
            else:              # vertical
                c, r = divmod(cand - 7, 2)
                x, y0 = 12 * c, 12 * r
                local[k] = (x, y0 + 12, x, y0) if pos else (x, y0, x, y0 + 12)
    return local, shift, arc, convex


SEG_KIND_LOCAL, SEG_KIND_SHIFT, SEG_KIND_ARC, SEG_KIND_CONVEX = _segment_kinds()
