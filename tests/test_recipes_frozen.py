"""Every recipe is frozen in tests/data/recipes/<name>.json: a change to a recipe, to a default
that recipes inherit, or to a curriculum knob default fails here with the diff. After an
intended change: ``python -m tools.freeze_recipes`` and commit the JSON (a visible diff)."""

import difflib
import json

import pytest

from jaxrl_arena import config as C
from tools.freeze_recipes import FROZEN, frozen_text


def test_every_recipe_is_frozen_and_nothing_else():
    assert sorted(p.stem for p in FROZEN.glob("*.json")) == sorted(C.RECIPES)


@pytest.mark.parametrize("name", sorted(C.RECIPES))
def test_recipe_matches_its_frozen_copy(name):
    frozen = (FROZEN / f"{name}.json").read_text()
    now = frozen_text(name)
    if now != frozen:
        diff = "".join(difflib.unified_diff(frozen.splitlines(True), now.splitlines(True),
                                            f"frozen/{name}.json", f"now/{name}"))
        pytest.fail(f"recipe {name} changed; if intended, run python -m tools.freeze_recipes\n{diff}")
    data = json.loads(frozen)
    data.pop("_curriculum_defaults")
    assert C.from_dict(data) == C.get_recipe(name)   # the frozen file is a loadable config


def test_a_changed_recipe_value_is_caught(monkeypatch):
    """Mutation: one value of one recipe (what a default change does to every inheritor)."""
    original = C.get_recipe
    monkeypatch.setattr(C, "get_recipe", lambda n: C.replace(original(n), "ppo.adam_eps", 1e-8))
    with pytest.raises(pytest.fail.Exception, match=r'(?s)changed.*-  "adam_eps": 1e-05'):
        test_recipe_matches_its_frozen_copy("cartpole")
