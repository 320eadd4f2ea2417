"""Constants of the Era-B MettaGrid arena (spec: docs/specs/arena.md).

Everything that is a fixed property of the game (ids, names, recipes of the recipe's base
config, observation layout) lives here, as plain Python / numpy values, so it can be used at
trace time without becoming a traced value.
"""

from __future__ import annotations

import numpy as np

# ----------------------------------------------------------------------------- resources (§4)
RESOURCE_NAMES = (
    "ore_red",
    "ore_blue",
    "ore_green",
    "battery_red",
    "battery_blue",
    "battery_green",
    "heart",
    "armor",
    "laser",
    "blueprint",
)
NUM_RESOURCES = len(RESOURCE_NAMES)
(
    ORE_RED,
    ORE_BLUE,
    ORE_GREEN,
    BATTERY_RED,
    BATTERY_BLUE,
    BATTERY_GREEN,
    HEART,
    ARMOR,
    LASER,
    BLUEPRINT,
) = range(10)
# Agent inventory limits: 50 per item, hearts 255. Converters are limited only by uint8 (255).
AGENT_INV_LIMIT = np.array([50, 50, 50, 50, 50, 50, 255, 50, 50, 50], np.int32)
CONV_INV_LIMIT = 255
# Items whose stats are reported by episode_stats (the only ones that exist in the arena).
ARENA_ITEMS = (ORE_RED, BATTERY_RED, HEART, ARMOR, LASER)
# The engine sums the capped holdings potential item by item in float32, and float32 addition
# is not associative: the order shows in the last bit. Item-id order reproduces every recorded
# agent_stat_reward of the golden files; alphabetical order by item name does not (ep00 step 60,
# agent 15 holds ore_red 1, battery_red 1, heart 1: recorded 1.9000001, the id order's sum;
# alphabetical gives 1.8999999 and 5 of the 43 recordings diverge).
REWARD_SUM_ORDER = tuple(range(NUM_RESOURCES))

# ----------------------------------------------------------------------------- objects (§2)
TYPE_AGENT = 0
TYPE_WALL = 1
# Converter kinds used by the arena, indexed 0..4 in every per-kind table below.
CONV_KIND_NAMES = ("mine_red", "generator_red", "altar", "lasery", "armory")
NUM_CONV_KINDS = len(CONV_KIND_NAMES)
MINE, GENERATOR, ALTAR, LASERY, ARMORY = range(NUM_CONV_KINDS)
CONV_KIND_TYPE_ID = np.array([2, 5, 8, 15, 16], np.int32)
CONV_MAX_OUTPUT = 5  # max_output counts output items only (§3.2)

# Recipes of the base config (easy altar = 1 battery). Rows: kind, columns: resource.
RECIPE_INPUT = np.zeros((NUM_CONV_KINDS, NUM_RESOURCES), np.int32)
RECIPE_INPUT[GENERATOR, ORE_RED] = 1
RECIPE_INPUT[ALTAR, BATTERY_RED] = 1
RECIPE_INPUT[LASERY, BATTERY_RED] = 1
RECIPE_INPUT[LASERY, ORE_RED] = 2
RECIPE_INPUT[ARMORY, ORE_RED] = 3
RECIPE_OUTPUT = np.zeros((NUM_CONV_KINDS, NUM_RESOURCES), np.int32)
RECIPE_OUTPUT[MINE, ORE_RED] = 1
RECIPE_OUTPUT[GENERATOR, BATTERY_RED] = 1
RECIPE_OUTPUT[ALTAR, HEART] = 1
RECIPE_OUTPUT[LASERY, LASER] = 1
RECIPE_OUTPUT[ARMORY, ARMOR] = 1
CONV_COOLDOWN = np.array([50, 25, 10, 10, 10], np.int32)
# put_items walks the recipe inputs in item-id order and calls maybe_start after each item;
# only these items can be recipe inputs (the loop over them is unrolled at trace time).
INPUT_ITEMS = (ORE_RED, BATTERY_RED)
# Likewise the items that can be converter outputs.
OUTPUT_ITEMS = (ORE_RED, BATTERY_RED, HEART, ARMOR, LASER)

# Static layer of the grid (int16): converter index >= 0, or one of these codes.
CELL_EMPTY = -1
CELL_WALL = -2
CELL_VOID = -3  # outside the real map (padding of small scenario maps): never observed, blocks

# ASCII legend (golden FORMAT.md).
ASCII_WALL = "#"
ASCII_EMPTY = "."
ASCII_AGENT = "@"
ASCII_CONV = {"m": MINE, "n": GENERATOR, "_": ALTAR, "S": LASERY, "o": ARMORY}
ASCII_OF_KIND = {v: k for k, v in ASCII_CONV.items()}

# ----------------------------------------------------------------------------- actions (§5)
NUM_ACTIONS = 16
ACTION_NAMES = (
    "noop",
    "move_north",
    "move_south",
    "move_west",
    "move_east",
    "put_items",
    "get_items",
) + tuple(f"attack_{k}" for k in range(9))
A_NOOP, A_MOVE_N, A_MOVE_S, A_MOVE_W, A_MOVE_E, A_PUT, A_GET = range(7)
A_ATTACK0 = 7
# Handler names (the stats use them): index = handler type.
HANDLER_NAMES = ("noop", "move", "put_items", "get_items", "attack")
H_NOOP, H_MOVE, H_PUT, H_GET, H_ATTACK = range(5)
# Orientation / move direction: 0 N, 1 S, 2 W, 3 E.
DIR_DR = np.array([-1, 1, 0, 0], np.int32)
DIR_DC = np.array([0, 0, -1, 1], np.int32)
# Right (clockwise) of each orientation: N->E, S->W, W->N, E->S.
RIGHT_DR = np.array([0, 0, -1, 1], np.int32)
RIGHT_DC = np.array([1, -1, 0, 0], np.int32)
# Attack scan (§7.5): (distance ahead, lateral offset; -1 = left, +1 = right) in scan order.
ATTACK_SCAN = tuple((d, s) for d in (1, 2, 3) for s in (0, -1, 1))

FREEZE_DURATION = 10

# ----------------------------------------------------------------------------- stats (§11)
# Per-agent counters (int32[A, NUM_STATS]); item stats are blocks of NUM_RESOURCES columns.
S_GAINED = 0
S_LOST = S_GAINED + NUM_RESOURCES
S_GET = S_LOST + NUM_RESOURCES
S_PUT = S_GET + NUM_RESOURCES
S_STEAL = S_PUT + NUM_RESOURCES
S_SUCCESS = S_STEAL + NUM_RESOURCES  # + handler type
S_FAILED = S_SUCCESS + len(HANDLER_NAMES)  # + handler type
S_INVALID_TYPE = S_FAILED + len(HANDLER_NAMES)
S_FROZEN_TICKS = S_INVALID_TYPE + 1
S_FRIENDLY_FIRE = S_FROZEN_TICKS + 1
S_BLOCKED = S_FRIENDLY_FIRE + 1
S_WASTED = S_BLOCKED + 1
NUM_STATS = S_WASTED + 1

# ----------------------------------------------------------------------------- observation (§9)
OBS_SIZE = 11
OBS_RADIUS = 5
OBS_TOKENS = 200
NUM_FEATURES = 27
EMPTY_TOKEN = 0xFF
F_TYPE_ID = 0
F_GROUP = 1
F_FROZEN = 2
F_ORIENTATION = 3
F_CONVERTING = 5
F_EPISODE_PCT = 7
F_LAST_ACTION = 8
F_LAST_ACTION_ARG = 9
F_LAST_REWARD = 10
F_INV0 = 17
FEATURE_NAMES = (
    "type_id",
    "agent:group",
    "agent:frozen",
    "agent:orientation",
    "agent:reserved_for_future_use",
    "converting",
    "swappable",
    "episode_completion_pct",
    "last_action",
    "last_action_arg",
    "last_reward",
    "agent:glyph",
    "agent:visitation_counts",
    "tag",
    "cooldown_remaining",
    "clipped",
    "remaining_uses",
) + tuple(f"inv:{n}" for n in RESOURCE_NAMES)
FEATURE_NORMS = np.array(
    [1, 10, 1, 1, 255, 1, 1, 255, 10, 10, 100, 255, 1000, 10, 255, 1, 255] + [100] * 10,
    np.float32,
)
# Token slots per cell: agent layer (type, group, frozen, orientation, 10 inv) then object layer
# (type, converting, 10 inv). A wall uses only the first object slot.
AGENT_TOKEN_SLOTS = 4 + NUM_RESOURCES
OBJECT_TOKEN_SLOTS = 2 + NUM_RESOURCES
CELL_TOKEN_SLOTS = AGENT_TOKEN_SLOTS + OBJECT_TOKEN_SLOTS


def manhattan_window_order() -> np.ndarray:
    """(dr, dc) of the 121 window cells in the engine's token order (§9.2)."""
    out = []
    for d in range(2 * OBS_RADIUS + 1):
        for dr in range(-d, d + 1):
            rest = d - abs(dr)
            if abs(dr) > OBS_RADIUS or rest > OBS_RADIUS:
                continue
            out.append((dr, -rest))
            if rest != 0:
                out.append((dr, rest))
    arr = np.array(out, np.int32)
    assert arr.shape == (OBS_SIZE * OBS_SIZE, 2)
    return arr


WINDOW_ORDER = manhattan_window_order()

# ----------------------------------------------------------------------------- map (§1)
MAP_BORDER = 6
QUADRANT_SIZE = 25
# Per-quadrant object counts, in the upstream symbol order: wall, altar, mine, generator,
# lasery, armory (agents are num_agents // 4 per quadrant).
MAPGEN_OBJECTS = ("wall", "altar", "mine_red", "generator_red", "lasery", "armory")
MAPGEN_KIND = (-1, ALTAR, MINE, GENERATOR, LASERY, ARMORY)  # -1 = wall
DEFAULT_QUADRANT_COUNTS = np.array([10, 5, 10, 5, 1, 1], np.int32)
