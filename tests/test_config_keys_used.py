"""No silent knobs: every config key is read somewhere outside the schema.

A key that nothing reads is a knob users turn to no effect (a pool size that stayed 256
whatever was set). This is a static check: each key's field name must appear in the trainer,
the envs' registry or the entry points as an attribute read (``cfg.ppo.lr``, ``ppo.lr``), a
keyword (``progress_smoothing=``, the curriculum factory's knob tables) or the dotted key in a
string (``"run.init_from"``). It cannot tell a read that changes nothing from one that does;
the frozen recipes and the behaviour tests cover that. Keys that are refused when set (kept
only so old configs load with a one-line error) are listed with their test.
"""

import re
from pathlib import Path

from jaxrl_arena import config as C

REPO = Path(__file__).resolve().parents[1]
SCHEMA = REPO / "jaxrl_arena" / "config" / "schema.py"
# Refused when set (validation names the replacement); tests/test_config.py checks the error.
REFUSED = {"curriculum.num_active_tasks"}


def readers() -> str:
    files = [p for p in (REPO / "jaxrl_arena").rglob("*.py") if p != SCHEMA]
    files += list((REPO / "experiments").glob("*.py"))
    return "\n".join(p.read_text() for p in files)


def is_read(key: str, source: str) -> bool:
    field = key.split(".", 1)[1]
    name = re.escape(field)
    return bool(re.search(rf"\.{name}\b", source) or re.search(rf"\b{name}\s*=", source)
                or f'"{key}"' in source)


def test_every_config_key_is_read_outside_the_schema():
    source = readers()
    unread = [key for key in C.all_keys() if key not in REFUSED and not is_read(key, source)]
    assert unread == [], f"config keys nothing reads (use them, or refuse them): {unread}"


def test_the_check_finds_an_unread_key():
    source = readers()
    assert is_read("ppo.lr", source)
    assert not is_read("ppo.learning_rate_that_nothing_reads", source)
