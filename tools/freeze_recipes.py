"""Write every recipe's config, as the trainer reads it, to ``tests/data/recipes/<name>.json``.

    python -m tools.freeze_recipes          # after an intended change to a recipe or a default

``tests/test_recipes_frozen.py`` compares each recipe with its frozen copy and fails with the
diff, so a change to a recipe, or to a default that recipes inherit, is always a visible diff
in review.
"""

from __future__ import annotations

import json
from pathlib import Path

FROZEN = Path(__file__).resolve().parents[1] / "tests" / "data" / "recipes"


def frozen_text(name: str) -> str:
    """The recipe's config, plus the curriculum knob defaults that its None fields take."""
    from jaxrl_arena import config as C
    from jaxrl_arena.curriculum import factory

    data = C.to_dict(C.get_recipe(name))
    data["_curriculum_defaults"] = {"learning_progress": factory.LP_KNOBS,
                                    "pool": factory.POOL_KNOBS, "staged": factory.STAGED_KNOBS}
    return json.dumps(data, indent=1, sort_keys=True) + "\n"


def main() -> None:
    from jaxrl_arena import config as C

    FROZEN.mkdir(parents=True, exist_ok=True)
    for stale in FROZEN.glob("*.json"):
        if stale.stem not in C.RECIPES:
            stale.unlink()
    for name in sorted(C.RECIPES):
        (FROZEN / f"{name}.json").write_text(frozen_text(name))
        print(f"wrote {FROZEN / name}.json")


if __name__ == "__main__":
    main()
