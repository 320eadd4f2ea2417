"""Export a run's latest policy as a parameters-only artefact (a few MB, no training state).

    python experiments/export_policy.py RUN_DIR OUT_DIR

The artefact (``policy.msgpack`` + ``policy.json``: the network's config, observation shape,
dtype and scale, number of actions) loads in three lines:

    from jaxrl_arena.policy_artifact import load_policy
    policy = load_policy(OUT_DIR)
    actions, carry = policy.act(key, obs, policy.initial_carry(obs.shape[0]))

and starts another run with ``--init-from OUT_DIR`` (strict: every parameter must match).
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from jaxrl_arena import cli  # noqa: E402


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("run_dir", type=Path)
    p.add_argument("out_dir", type=Path)
    a = p.parse_args()
    from jaxrl_arena.policy_artifact import export_run

    try:
        path = export_run(a.run_dir, a.out_dir)
    except FileNotFoundError as err:
        print(f"error: {err}", file=sys.stderr)
        return 2
    size = sum(f.stat().st_size for f in path.iterdir())
    print(f"wrote {path} ({size / 1e6:.2f} MB)")
    return 0


if __name__ == "__main__":
    cli.main_guard(main)
