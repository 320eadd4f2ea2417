"""Host-side parsing of N++ ``map_data`` bytes and nclone ``.replay`` containers (numpy only).

FORMAT.md §1 (map layout and entity records) and §2 (replay container).

Section marks (§) cite docs/specs/npp.md; FORMAT.md is tests/data/golden/npp/FORMAT.md.
"""

from __future__ import annotations

import dataclasses
import struct
import warnings

import numpy as np

from envs.npp import constants as C


@dataclasses.dataclass
class EntityRecord:
    """One entity as nclone constructs it (host side, before padding into arrays)."""

    etype: int            # 4 for an exit switch (it lives in list 3 right after its door)
    x: float
    y: float
    orientation: int = -1
    mode: int = 0
    load_seq: int = 0     # creation order (grid insertion order at load)
    list_type: int = 0    # the per-type list it lives in (3 for exit switches)
    in_grid: bool = True  # exit doors enter the grid only when their switch is hit
    door_pos: tuple | None = None  # doors 5/6/8: segment centre (switch pos is x, y)


@dataclasses.dataclass
class ParsedMap:
    tiles_inner: np.ndarray       # int32[42, 23], indexed [x, y]
    spawn: tuple                  # px
    entities: list                # EntityRecord in nclone update order
    exit_door_count: int
    death_ball_count: int


def _u(m, i):
    return int(m[i])


def parse_map(map_bytes, require_exit: bool = True) -> ParsedMap:
    """Parse ``map_data``; raise a one-line ``ValueError`` on malformed data."""
    m = np.frombuffer(bytes(map_bytes), dtype=np.uint8) if not isinstance(map_bytes, np.ndarray) \
        else np.asarray(map_bytes, dtype=np.uint8)
    n = len(m)
    if n < C.MAP_MIN_LEN:
        raise ValueError(f"map_data has {n} bytes; at least {C.MAP_MIN_LEN} are needed (tiles + ninja record)")
    tiles = m[C.MAP_TILES_OFFSET:C.MAP_TILES_OFFSET + C.INNER_W * C.INNER_H].astype(np.int32)
    bad = tiles[tiles >= C.NUM_TILE_IDS]
    if bad.size:
        raise ValueError(f"unknown tile id {int(bad[0])} in map_data (valid ids are 0..37)")
    tiles_inner = tiles.reshape(C.INNER_H, C.INNER_W).T.copy()   # [x, y]
    exit_count = _u(m, C.MAP_EXIT_DOOR_COUNT)
    ball_count = _u(m, C.MAP_DEATH_BALL_COUNT)
    if m[C.MAP_NINJA_RECORD] != 0:
        raise ValueError(f"map_data byte {C.MAP_NINJA_RECORD} must be 0 (ninja record), got {m[C.MAP_NINJA_RECORD]}")
    spawn = (6.0 * _u(m, 1231), 6.0 * _u(m, 1232))
    if spawn == (0.0, 0.0):
        raise ValueError("map_data has no ninja spawn (record at 1230 is all zero)")

    ents: list[EntityRecord] = []
    seq = 0
    i = C.MAP_NINJA_RECORD
    while n - i >= 5:
        t = _u(m, i)
        if t > C.MAX_ENTITY_TYPE:
            raise ValueError(f"unknown entity type {t} at map_data offset {i}")
        step = 5
        if t == C.T_EXIT:
            j = i + 5 * exit_count
            if j + 2 >= n:
                raise ValueError(f"exit door at offset {i} has no switch record at offset {j}")
            ents.append(EntityRecord(3, 6.0 * _u(m, i + 1), 6.0 * _u(m, i + 2), _u(m, i + 3), _u(m, i + 4),
                                     load_seq=seq, list_type=3, in_grid=False))
            ents.append(EntityRecord(4, 6.0 * _u(m, j + 1), 6.0 * _u(m, j + 2), -1, 0,
                                     load_seq=seq + 1, list_type=3, in_grid=True))
            seq += 2
        elif t in (C.T_DOOR_LOCKED, C.T_DOOR_TRAP):
            if i + 7 >= n:
                raise ValueError(f"door record at offset {i} is truncated (needs its switch position)")
            sw = (6.0 * _u(m, i + 6), 6.0 * _u(m, i + 7))
            ents.append(EntityRecord(t, sw[0], sw[1], _u(m, i + 3), _u(m, i + 4), load_seq=seq, list_type=t,
                                     door_pos=(6.0 * _u(m, i + 1), 6.0 * _u(m, i + 2))))
            seq += 1
            b8 = _u(m, i + 8) if i + 8 < n else 1
            b9 = _u(m, i + 9) if i + 9 < n else 1
            step = 10 if (_u(m, i + 7) != 0 and b8 == 0 and b9 == 0) else 9
        elif t == C.T_DOOR_REGULAR:
            p = (6.0 * _u(m, i + 1), 6.0 * _u(m, i + 2))
            ents.append(EntityRecord(t, p[0], p[1], _u(m, i + 3), _u(m, i + 4), load_seq=seq, list_type=t,
                                     door_pos=p))
            seq += 1
        elif t in C.INSTANTIATED_TYPES:
            o = _u(m, i + 3)
            if t in (C.T_LAUNCH_PAD, C.T_ONE_WAY, C.T_THWUMP, C.T_DRONE_ZAP, C.T_DRONE_MINI) and o > 7:
                raise ValueError(f"entity type {t} at offset {i} has invalid orientation {o}")
            ents.append(EntityRecord(t, 6.0 * _u(m, i + 1), 6.0 * _u(m, i + 2), o, _u(m, i + 4),
                                     load_seq=seq, list_type=t))
            seq += 1
        i += step
    for e in ents:
        if e.etype in (5, 6, 8) and e.orientation > 7:
            raise ValueError(f"door entity has invalid orientation {e.orientation}")
    if require_exit and not any(e.etype == C.T_EXIT for e in ents):
        raise ValueError("map_data has no exit door (type 3 record)")
    # nclone update order: per-type list ascending, then creation order.
    ents.sort(key=lambda e: (e.list_type, e.load_seq))
    return ParsedMap(tiles_inner, spawn, ents, exit_count, ball_count)


# ----------------------------------------------------------------------------- replays


@dataclasses.dataclass
class Replay:
    map_bytes: bytes
    inputs: np.ndarray        # uint8[T]
    version: int
    repaired: bool


# Files whose container is one byte short (FORMAT.md §2): a byte of the count table is missing.
def read_replay(path) -> Replay:
    """Read a v0/v1 ``.replay``; repair the known one-byte-short defect (with a warning)."""
    with open(path, "rb") as fh:
        data = fh.read()
    if len(data) < 8:
        raise ValueError(f"{path}: replay file too short ({len(data)} bytes)")
    first = struct.unpack_from("<I", data, 0)[0]
    if first <= 100:
        if first != 1 or len(data) < 13:
            raise ValueError(f"{path}: unsupported replay version {first}")
        version = 1
        map_len, n_inputs = struct.unpack_from("<II", data, 4)
        body = data[13:]
    else:
        version = 0
        map_len, n_inputs = struct.unpack_from("<II", data, 0)
        body = data[8:]
    declared = map_len + n_inputs
    repaired = False
    if len(body) == declared - 1 and map_len > 1156 and all(b == 0 for b in body[1150:1155]):
        # One byte of the all-zero count table (1150..1155) is missing: re-insert it at 1150.
        warnings.warn(f"{path}: one byte short of its header; re-inserted a 0 at map offset 1150")
        body = body[:1150] + b"\x00" + body[1150:]
        repaired = True
    if len(body) != declared:
        raise ValueError(f"{path}: body has {len(body)} bytes but the header declares {declared}")
    inputs = np.frombuffer(body[map_len:], dtype=np.uint8).copy()
    if inputs.size and inputs.max() > 7:
        raise ValueError(f"{path}: input byte {int(inputs.max())} is not in 0..7")
    return Replay(bytes(body[:map_len]), inputs, version, repaired)


def decode_inputs(inputs: np.ndarray):
    """Replay bytes -> (hor, jump): bit0 jump, bit1 right, bit2 left (left wins)."""
    inputs = np.asarray(inputs, np.int32)
    hor = np.where(inputs & 4, -1, np.where(inputs & 2, 1, 0)).astype(np.int32)
    jump = (inputs & 1).astype(np.int32)
    return hor, jump
