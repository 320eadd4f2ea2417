"""Command line shared by every experiment: --recipe or --config, --config-override, --fresh,
seeds, A/B; ``--help`` lists every config key (type, default, meaning) and ``--list-recipes``
the named configs.

A key's meaning in ``--help`` is the comment that documents its field in
``jaxrl_arena/config/schema.py`` (the comment lines right above the field, first sentence, and
the comment beside it), so the help and the schema cannot drift apart.
"""

from __future__ import annotations

import argparse
import ast
import dataclasses
import inspect
import io
import json
import sys
import tokenize
import types
import typing
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any, Literal, Union

from jaxrl_arena import config as config_lib
from jaxrl_arena.config import Config, ConfigError
from jaxrl_arena.config import schema as schema_module
from jaxrl_arena.config.recipes import first_sentence


def parser(description: str, default_recipe: str) -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(description=description,
                                epilog=config_reference(default_recipe),
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    p.set_defaults(default_recipe=default_recipe)
    p.add_argument("--recipe", default=None,
                   help=f"named config to start from (default: {default_recipe}; "
                        "--list-recipes lists them)")
    p.add_argument("--config", default=None, metavar="FILE.json",
                   help="start from a whole config saved as JSON (a run's config.json, "
                        "--print-config's output); keys it lacks keep their schema defaults, "
                        "--config-override applies on top")
    p.add_argument("--list-recipes", action=ListRecipes,
                   help="print every recipe with its env and a one-line description, and exit")
    p.add_argument("--config-override", nargs="+", action="extend", default=[],
                   metavar="KEY=VALUE", help="dotted.key=value, one or more; may repeat")
    p.add_argument("--fresh", action="store_true",
                   help="start over even if the run dir holds a checkpoint")
    p.add_argument("--num-seeds", type=int, default=None,
                   help="train N seeds vmapped in one jit (= run.num_seeds)")
    p.add_argument("--ab", nargs="+", action="extend", default=[], metavar="KEY=V1,V2",
                   help="A/B variants of any config key; several items give their cross "
                        "product. PPO's hyperparameters that are data in the compiled step "
                        "(ppo.lr, ppo.gamma, ppo.ent_coef, ...) vmap with the seeds in one jit; "
                        "any other key runs one program per value, one after the other with "
                        "the same seeds, in <run dir>/ab/<key=value,...>/, and "
                        "<run dir>/ab_report.md compares every variant. A tuple value goes in "
                        "brackets: policy.hidden_sizes=(16,16),(32,32)")
    p.add_argument("--init-from", default=None, metavar="RUN_OR_ARTEFACT",
                   help="start from the policy of a run dir or a policy artefact "
                        "(= run.init_from; every parameter must match)")
    p.add_argument("--print-config", action="store_true", help="print the config (recipe and overrides; auto values as set) and exit")
    return p


def add_render_args(p: argparse.ArgumentParser, default_steps: int) -> None:
    """``--render-episode OUT.gif`` / ``--render-steps N`` of the env entry points."""
    p.add_argument("--render-episode", metavar="OUT.gif", default=None,
                   help="write a GIF of one episode instead of training")
    p.add_argument("--render-steps", type=int, default=default_steps,
                   help="agent steps to render at most (the episode may end sooner)")


def parse_entry(p: argparse.ArgumentParser, env_name: str, script: str
                ) -> tuple[argparse.Namespace, Config]:
    """Parse an env entry point's arguments into its config; one-line errors for another env
    or a bad ``--render-steps``."""
    args = p.parse_args()
    cfg = build_config(args)
    if cfg.env.name != env_name:
        raise ConfigError(f"{script} trains env.name={env_name}, got {cfg.env.name!r}")
    if getattr(args, "render_steps", 1) < 1:
        raise ConfigError(f"--render-steps must be >= 1, got {args.render_steps}")
    return args, cfg


def build_config(args: argparse.Namespace, extra: Sequence[str] = ()) -> Config:
    """The config of ``--recipe`` or ``--config``, then ``extra`` and ``--config-override``,
    ``--num-seeds``, ``--init-from``. Sets ``args.recipe`` to the name runs are labelled with:
    the recipe, or with ``--config`` the recipe the file's run was started from (else the file
    name), so a run's own ``config.json`` resumes that run."""
    config_file = getattr(args, "config", None)
    if config_file and args.recipe:
        raise ConfigError("--config and --recipe both give the starting config; pass one")
    if config_file:
        cfg, args.recipe = config_from_file(config_file)
    else:
        args.recipe = args.recipe or getattr(args, "default_recipe", None)
        cfg = config_lib.get_recipe(args.recipe)
    cfg = config_lib.apply_overrides(cfg, list(extra) + list(args.config_override))
    if args.num_seeds is not None:
        cfg = config_lib.replace(cfg, "run.num_seeds", args.num_seeds)
    if getattr(args, "init_from", None):
        cfg = config_lib.replace(cfg, "run.init_from", args.init_from)
    return cfg


def main_guard(fn: Callable[[], int | None]) -> None:
    """Run ``fn``; configuration mistakes become one line on stderr and exit status 2."""
    try:
        code = fn()
    except ConfigError as err:
        print(f"error: {err}", file=sys.stderr)
        sys.exit(2)
    except RuntimeError as err:
        from jaxrl_arena.loop import TrainingStopped

        if not isinstance(err, TrainingStopped):
            raise
        print(f"error: {err}", file=sys.stderr)
        sys.exit(3)
    except KeyboardInterrupt:
        print("interrupted", file=sys.stderr)
        sys.exit(130)
    sys.exit(code or 0)


def print_config(cfg: Config) -> None:
    """``--print-config``: the config as JSON (``auto`` values are resolved when a run starts)."""
    import json

    print(json.dumps(config_lib.to_dict(cfg), indent=2))


def train_and_report(cfg: Config, args: argparse.Namespace, experiment: str,
                     metric: str, label: str, trend: tuple[str, str] | None = None) -> int:
    """Train (or resume) ``cfg`` and print one closing line with ``metric``'s last value, the
    last held-out evaluation of the same statistic (``eval/<stat>/<task>``) and, with
    ``trend=(metric, label)``, that metric's first and last logged values in this run dir.

    An ``--ab`` key that changes the compiled program makes several programs
    (``jaxrl_arena.ab``): every variant is checked first, then each program trains in its
    dir with its closing line, and the combined report on ``metric`` and the speed ends."""
    from jaxrl_arena import ab as ab_lib
    from jaxrl_arena.loop import run_dir, train

    def closing(result) -> None:
        print(closing_line(result, metric, label, trend))

    plan = ab_lib.plan(cfg, args.ab, run_dir(cfg, experiment, args.recipe))
    if plan is None:  # every --ab key vmaps: one program
        closing(train(cfg, experiment=experiment, recipe=args.recipe, fresh=args.fresh,
                      ab=args.ab))
        return 0
    import jax

    ab_lib.check(plan, num_devices=len(jax.devices()))
    if ab_lib.run(plan, experiment=experiment, recipe=args.recipe, fresh=args.fresh,
                  after=closing) is not None:
        print(ab_lib.report(plan, metric))
    return 0


def closing_line(result, metric: str, label: str, trend: tuple[str, str] | None = None) -> str:
    """``done: ...``: a run's agent-steps and dir, ``trend``'s first and last logged values,
    ``metric``'s last value and its last held-out evaluation."""
    from jaxrl_arena.evaluation import metric_name

    value = result.last_metrics.get(metric)
    prefix = f"eval/{metric_name(metric.rsplit('/', 1)[-1])}/"
    held_out = {k[len(prefix):]: v for k, v in result.last_metrics.items() if k.startswith(prefix)}
    first_last = logged_first_last(result.run_dir, trend[0]) if trend else None
    return (f"done: {result.agent_steps:,} agent-steps in {result.run_dir}"
            + (f", {trend[1]} {first_last[0]:.3f} -> {first_last[1]:.3f}" if first_last else "")
            + (f", {label} {value:.3f}" if value is not None else "")
            + ("; held-out " + ", ".join(f"{t} {v:.3f}" for t, v in held_out.items())
               if held_out else ""))


def logged_first_last(run_dir, metric: str) -> tuple[float, float] | None:
    """The first and the last value of ``metric`` in a run dir's metrics.jsonl (None if it
    was never logged)."""
    from jaxrl_arena.logging import read_metrics

    path = Path(run_dir) / "metrics.jsonl"
    values = [float(r[metric]) for r in (read_metrics(path) if path.exists() else [])
              if isinstance(r.get(metric), (int, float))]
    return (values[0], values[-1]) if values else None


# ----------------------------------------------------------------------------- --config FILE
def config_from_file(path: str) -> tuple[Config, str]:
    """``(config, run label)`` of a JSON config file; every mistake is one line naming the
    file: unreadable, not JSON, an unknown key (``config.from_dict``), a value of the wrong
    type (parsed as ``--config-override`` parses it)."""
    try:
        text = Path(path).read_text()
    except OSError as err:
        raise ConfigError(f"--config {path}: cannot read it ({err.strerror})") from None
    try:
        data = json.loads(text)
    except json.JSONDecodeError as err:
        raise ConfigError(f"--config {path}: not JSON ({err.msg} at line {err.lineno}, "
                          f"column {err.colno})") from None
    if not isinstance(data, dict):
        raise ConfigError(f"--config {path}: expected a JSON object of config sections, "
                          f"got {type(data).__name__}")
    sections = {f.name for f in dataclasses.fields(Config)}
    for name, value in data.items():
        if name in sections and not isinstance(value, dict):
            raise ConfigError(f"--config {path}: section {name!r} must be an object of keys, "
                              f"got {type(value).__name__}")
    try:
        cfg = config_lib.from_dict(data)
        for key in config_lib.all_keys():
            value = config_lib.parse_value(key, override_text(config_lib.get(cfg, key)))
            cfg = config_lib.replace(cfg, key, value)
    except ConfigError as err:
        raise ConfigError(f"--config {path}: {err}") from None
    resolved = data.get("_resolved")
    label = resolved.get("recipe") if isinstance(resolved, dict) else None
    return cfg, label or Path(path).stem


def override_text(value: Any) -> str:
    """A config value as ``--config-override`` spells it (``true``, ``64,64``, ``none``)."""
    if isinstance(value, bool):
        return str(value).lower()
    if value is None:
        return "none"
    if isinstance(value, (tuple, list)):
        return ",".join(override_text(v) for v in value) if value else "()"
    if isinstance(value, float) and value.is_integer():
        return str(int(value))  # 1e6 in a JSON file is a float; an int key takes it
    return str(value)


# ----------------------------------------------------------------------------- --list-recipes
class ListRecipes(argparse.Action):
    """``--list-recipes``: prints the recipes and exits, like ``--help``."""

    def __init__(self, option_strings, dest, **kwargs):
        super().__init__(option_strings, dest, nargs=0, default=argparse.SUPPRESS, **kwargs)

    def __call__(self, parser, namespace, values, option_string=None):
        print(recipe_list(parser.get_default("default_recipe")))
        parser.exit()


def recipe_list(default_recipe: str | None = None) -> str:
    """One line per recipe: name, the env it trains, the first sentence of its docstring."""
    rows = []
    for name in sorted(config_lib.RECIPES):
        doc = config_lib.describe(name) or "(no description)"
        mark = " (default)" if name == default_recipe else ""
        rows.append((name + mark, config_lib.get_recipe(name).env.name, doc))
    width = max(len(r[0]) for r in rows)
    env_width = max(len(r[1]) for r in rows)
    return "\n".join(f"{n:<{width}}  {e:<{env_width}}  {d}" for n, e, d in rows)


# ----------------------------------------------------------------------------- --help keys
@dataclasses.dataclass(frozen=True)
class KeyDoc:
    key: str  # dotted, e.g. "ppo.lr"
    type: str  # e.g. "float", "int|auto", "mlp|cnn|lstm"
    default: str  # the schema default, spelled as an override
    meaning: str  # one line from schema.py's comments; "" when the field has none


def schema_comments(module: types.ModuleType = schema_module) -> dict[tuple[str, str], str]:
    """``{(class name, field name): one-line meaning}`` from the comments of a module's
    dataclass fields: the first sentence of the comment lines directly above a field, then
    the comment beside it."""
    source = inspect.getsource(module)
    lines = source.splitlines()
    beside, alone = {}, {}
    for tok in tokenize.generate_tokens(io.StringIO(source).readline):
        if tok.type == tokenize.COMMENT:
            row = tok.start[0]
            text = tok.string.lstrip("#").strip()
            own_line = lines[row - 1].lstrip().startswith("#")
            (alone if own_line else beside)[row] = text
    meanings = {}
    for node in ast.walk(ast.parse(source)):
        if not isinstance(node, ast.ClassDef):
            continue
        for stmt in node.body:
            if not (isinstance(stmt, ast.AnnAssign) and isinstance(stmt.target, ast.Name)):
                continue
            above, row = [], stmt.lineno - 1
            while row in alone:
                above.insert(0, alone[row])
                row -= 1
            side = [beside[r] for r in range(stmt.lineno, stmt.end_lineno + 1) if r in beside]
            parts = [first_sentence(" ".join(above))] + side
            meanings[(node.name, stmt.target.id)] = "; ".join(p for p in parts if p)
    return meanings


def type_label(tp: Any) -> str:
    origin = typing.get_origin(tp)
    if origin is Literal:
        return "|".join(str(a) for a in typing.get_args(tp))
    if origin in (Union, types.UnionType):
        return "|".join(type_label(a) for a in typing.get_args(tp))
    if origin is tuple:
        return f"tuple[{type_label(typing.get_args(tp)[0])}]"
    if tp is type(None):
        return "none"
    return getattr(tp, "__name__", str(tp))


def key_docs() -> list[KeyDoc]:
    """Every config key with its type, schema default and meaning, in schema order."""
    meanings = schema_comments()
    defaults = Config()
    docs = []
    for section, cls in typing.get_type_hints(Config).items():
        hints = typing.get_type_hints(cls)
        for field in dataclasses.fields(cls):
            key = f"{section}.{field.name}"
            docs.append(KeyDoc(key, type_label(hints[field.name]),
                               override_text(config_lib.get(defaults, key)),
                               meanings.get((cls.__name__, field.name), "")))
    return docs


def config_reference(recipe: str | None = None) -> str:
    """The ``--help`` epilog: every key as ``key  type = default  meaning``, grouped by
    section (with the section's docstring); where ``recipe`` sets another value, it is shown."""
    recipe_cfg = config_lib.get_recipe(recipe) if recipe else None
    docs = key_docs()
    width = max(len(d.key) for d in docs)
    lines = ["config keys (--config-override KEY=VALUE; the default is the schema's"
             + (f", [recipe: ...] where {recipe} differs):" if recipe else "):")]
    section = None
    for d in docs:
        name = d.key.split(".")[0]
        if name != section:
            section = name
            cls = typing.get_type_hints(Config)[name]
            doc = inspect.getdoc(cls) or ""
            # A dataclass without a docstring gets its signature as __doc__: not an intro.
            intro = "" if doc.startswith(f"{cls.__name__}(") else first_sentence(doc)
            lines.append(f"\n{name}:" + (f" {intro}" if intro else ""))
        value = f"{d.type} = {d.default or chr(34) * 2}"
        if recipe_cfg is not None:
            in_recipe = override_text(config_lib.get(recipe_cfg, d.key))
            if in_recipe != d.default:
                value += f" [recipe: {in_recipe}]"
        lines.append(f"  {d.key:<{width}}  {value}" + (f"  {d.meaning}" if d.meaning else ""))
    return "\n".join(lines)
