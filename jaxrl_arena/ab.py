"""``--ab`` over any config key: variants that share a compiled program vmap in it, the rest
run as separate programs one after the other in the same command, and one combined report.

``--ab KEY=V1,V2`` items form their cross product. Keys that are data inside the compiled step
(``train.VMAPPABLE_KEYS``: PPO's hyperparameters) vmap in one jit with the seeds, as the loop
does when every key is one of them (then this module is not involved). Any other key changes
the program's shapes or structure (``ppo.num_steps``, ``policy.hidden_sizes``,
``arena.combat``): each combination of their values is one program, trained with the same
seeds in ``<run dir>/ab/<key=value,...>/`` with the vmappable variants vmapped inside it. Its
``config.json`` holds that program's values, so two program dirs differ in the A/B keys only,
and a rerun of the command resumes each program's dir. Every variant's config is checked before
the first program starts, so a mistake in the last variant does not cost the first one's run.

After the last program, ``<run dir>/ab_report.md`` (and ``ab_report.png`` with matplotlib)
compares every variant on the entry point's headline metric and the speed, with
:mod:`jaxrl_arena.compare`'s tables: mean ± std over seeds, a vmapped variant selected out of
its program's per-run metrics (``runs/<label>/<metric>``) as ``compare`` does for
``DIR::ITEMS``.

A tuple value goes in brackets: ``--ab policy.hidden_sizes=(16,16),(32,32)``.
"""

from __future__ import annotations

import dataclasses
import hashlib
import importlib.util
import itertools
import json
import re
from collections.abc import Callable
from pathlib import Path
from typing import Any

from jaxrl_arena import config as config_lib
from jaxrl_arena.config import Config, ConfigError
from jaxrl_arena.config.validation import check_values
from jaxrl_arena.train import VMAPPABLE_KEYS, expand_runs, make_env

PROGRAMS_DIR = "ab"  # <run dir>/ab/<program label>/
REPORT = "ab_report"  # <run dir>/ab_report.md and .png
SPEED = "overview/sps"
# Keys that name the run dir itself: A/B programs get theirs under it.
RUN_DIR_KEYS = ("run.dir", "run.name")
# Sections the registry builds an env from: programs equal in these share one env.
ENV_KEY_SECTIONS = ("env", *config_lib.ENV_SECTIONS)


@dataclasses.dataclass
class Program:
    """One compiled program of an A/B: the values of its non-vmappable keys, set in the
    command's config, with the vmappable ``--ab`` items vmapped inside it."""

    label: str  # "policy.hidden_sizes=(16,16),ppo.num_steps=8"
    config: Config
    ab: list[str]  # the vmappable --ab items, as given
    directory: Path
    env: Any = None  # built by check(), handed to the loop

    def variants(self) -> list[str]:
        """The labels of its vmapped variants, seeds aside (``[""]`` without any)."""
        out: list[str] = []
        for spec in expand_runs(self.config, self.ab):
            variant = ",".join(spec.label.split(",")[:-1])  # a run's label ends with seed=N
            if variant not in out:
                out.append(variant)
        return out


@dataclasses.dataclass
class Plan:
    directory: Path  # the command's run dir
    programs: list[Program]


def split_values(text: str) -> list[str]:
    """``V1,V2,...`` -> the values; commas inside brackets belong to one tuple value."""
    values, depth, start = [], 0, 0
    for i, char in enumerate(text):
        if char in "([":
            depth += 1
        elif char in ")]":
            depth -= 1
        elif char == "," and depth == 0:
            values.append(text[start:i])
            start = i + 1
    values.append(text[start:])
    return [v.strip() for v in values if v.strip()]


def value_text(value: Any) -> str:
    """A value as a program's label spells it: ``true``, ``0.001``, ``(16,16)``, ``none``."""
    if isinstance(value, bool):
        return str(value).lower()
    if value is None:
        return "none"
    if isinstance(value, tuple):
        return "(" + ",".join(value_text(v) for v in value) + ")"
    return str(value)


def _dir_name(label: str, taken: set[str]) -> str:
    """A file name for a program's label: characters a path cannot hold (a "/" in a value)
    become "_", with a hash of the label where that makes two names equal."""
    name = re.sub(r"[^\w.,=+()\-]", "_", label)[:150]
    if name in taken:
        name = f"{name}-{hashlib.sha1(label.encode()).hexdigest()[:8]}"
    taken.add(name)
    return name


def plan(cfg: Config, ab: list[str] | None, directory: Path) -> Plan | None:
    """The programs of the ``--ab`` items over ``cfg``, or None when every key vmaps (one
    program: the loop's own ``--ab``, unchanged). One line for an unknown key, a bad value, a
    key given twice, a value listed twice or a key that names the run dir."""
    items = [(item, *config_lib.split_override(item)) for item in ab or []]
    for _, key, _ in items:
        config_lib.check_key(key)
    if all(key in VMAPPABLE_KEYS for _, key, _ in items):
        return None
    keys = [key for _, key, _ in items]
    for key in keys:
        if keys.count(key) > 1:
            raise ConfigError(f"--ab names {key} twice; list its values in one item: "
                              f"{key}=V1,V2")
        if key in RUN_DIR_KEYS:
            raise ConfigError(f"--ab {key}: it names the run dir; the A/B programs get theirs "
                              f"under it ({directory / PROGRAMS_DIR}/<key=value,...>/)")
    axes = []
    for item, key, text in items:
        if key in VMAPPABLE_KEYS:
            continue
        values = [config_lib.parse_value(key, v) for v in split_values(text)]
        if not values:
            raise ConfigError(f"--ab {item!r} lists no value; expected {key}=V1,V2")
        for i, v in enumerate(values):
            if v in values[:i]:
                raise ConfigError(f"--ab {key} lists {value_text(v)} twice")
        axes.append([(key, v) for v in values])
    vmapped = [item for item, key, _ in items if key in VMAPPABLE_KEYS]
    programs, taken = [], set()
    for combo in itertools.product(*axes):
        program_cfg = cfg
        for key, value in combo:
            program_cfg = config_lib.replace(program_cfg, key, value)
        label = ",".join(f"{key}={value_text(value)}" for key, value in combo)
        programs.append(Program(label, program_cfg, vmapped,
                                Path(directory) / PROGRAMS_DIR / _dir_name(label, taken)))
    return Plan(Path(directory), programs)


def check(plan: Plan, num_devices: int) -> None:
    """Every variant's config checked as its run will check it (values, then the env's and the
    devices' consistency: the batch's split into minibatches, ...) before any program starts;
    a mistake is one line naming the program. Each distinct env is built once, for the run."""
    envs: dict[str, Any] = {}
    for program in plan.programs:
        cfg = program.config
        try:
            check_values(cfg)
            for spec in expand_runs(cfg, program.ab):
                check_values(spec.config)
            data = config_lib.to_dict(cfg)
            env_key = json.dumps([data[s] for s in ENV_KEY_SECTIONS], sort_keys=True)
            if env_key not in envs:
                envs[env_key] = make_env(cfg)
            program.env = env = envs[env_key]
            cfg = config_lib.resolve_reset_strategy(cfg, env.cheap_reset)
            if cfg.ppo.num_envs == "auto":  # sized by the run's own resolve (a compile)
                config_lib.validate(cfg, num_agents=env.num_agents, num_devices=num_devices)
            else:
                config_lib.resolve_static(cfg, num_agents=env.num_agents,
                                          cheap_reset=env.cheap_reset, num_devices=num_devices)
        except ConfigError as err:
            raise ConfigError(f"--ab program {program.label}: {err}") from None


def run(plan: Plan, *, experiment: str, recipe: str, fresh: bool = False,
        after: Callable[[Any], None] = lambda result: None) -> list | None:
    """Train (or resume) each program in its dir, one after the other, holding the command's
    run dir; ``after(result)`` follows each. None when a signal stopped a program: the rest
    are not started, and a rerun resumes."""
    from jaxrl_arena.loop import train
    from jaxrl_arena.run_lock import RunLock

    results = []
    with RunLock(plan.directory):
        for i, program in enumerate(plan.programs, 1):
            print(f"A/B program {i} of {len(plan.programs)}: {program.label} "
                  f"-> {program.directory}", flush=True)
            result = train(program.config, experiment=experiment, recipe=recipe, fresh=fresh,
                           ab=program.ab, env=program.env, directory=program.directory)
            after(result)
            results.append(result)
            if result.stopped_by_signal:
                left = [p.label for p in plan.programs[i:]]
                if left:
                    print(f"A/B stopped by a signal; not started: {'; '.join(left)}. Rerun the "
                          "same command to resume", flush=True)
                return None
    return results


def report(plan: Plan, metric: str) -> str:
    """The combined report of every variant (program × vmapped variant) on ``metric`` and the
    speed, written to ``<run dir>/ab_report.md`` (and ``.png`` when matplotlib is there)."""
    from jaxrl_arena import compare

    refs = []
    lines = [f"# A/B: {plan.directory}", "",
             "| variant | program dir | its runs |", "|---|---|---|"]
    unlogged = []
    for program in plan.programs:
        variants = program.variants()
        if len(variants) > 1 and not program.config.logging.per_run_metrics:
            unlogged.append(program.label)
        for variant in variants:
            name = ",".join(part for part in (program.label, variant) if part)
            if (program.directory / "metrics.jsonl").exists():
                refs.append(compare.RunRef(program.directory, variant or None, name))
            where = program.directory.relative_to(plan.directory)
            lines.append(f"| {name} | `{where}` | {variant or 'all'} |")
    seeds = {", ".join(str(p.config.run.seed + i) for i in range(p.config.run.num_seeds))
             for p in plan.programs}
    note = (f"Seeds {' | '.join(sorted(seeds))}" + (" in every program" if len(seeds) == 1 else "")
            + f"; `{SPEED}` is per program (its vmapped variants share one compiled step).")
    lines += ["", note, ""]
    if unlogged:
        note = (f"logging.per_run_metrics=false: the vmapped variants of {'; '.join(unlogged)} "
                "were logged together only, not told apart here.")
        lines += [note, ""]
    table, data = compare.metrics_table(refs, list(dict.fromkeys((metric, SPEED))))
    lines.append(table)
    path = plan.directory / f"{REPORT}.md"
    path.write_text("\n".join(lines))
    written = [str(path)]
    if data and importlib.util.find_spec("matplotlib") is not None:
        png = plan.directory / f"{REPORT}.png"
        compare.write_png(str(png), data)
        written.append(str(png))
    return "\n".join(lines) + f"\nwrote {' and '.join(written)}"
