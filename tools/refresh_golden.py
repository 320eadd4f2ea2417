"""Replace the repository's golden data with a fresh copy of the reference recordings.

    python tools/refresh_golden.py ../shared/golden

Copies ``arena/`` and ``npp/`` from SOURCE over ``tests/data/golden/`` (files are copied
byte for byte, never edited) and writes ``SHA256SUMS``, which the test suite checks so that a
partial or altered copy fails loudly.
"""

from __future__ import annotations

import argparse
import shutil
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from envs.golden_data import CHECKSUMS, IN_REPO_GOLDEN, data_files, sha256_of

PARTS = ("arena", "npp")


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("source", type=Path, help="folder holding arena/ and npp/ (e.g. ../shared/golden)")
    args = ap.parse_args(argv)
    missing = [p for p in PARTS if not (args.source / p).is_dir()]
    if missing:
        print(f"error: {args.source} has no {', '.join(missing)}/ folder; expected {PARTS}",
              file=sys.stderr)
        return 2
    IN_REPO_GOLDEN.mkdir(parents=True, exist_ok=True)
    for part in PARTS:
        shutil.rmtree(IN_REPO_GOLDEN / part, ignore_errors=True)
        shutil.copytree(args.source / part, IN_REPO_GOLDEN / part)
    files = data_files(IN_REPO_GOLDEN)
    lines = [f"{sha256_of(IN_REPO_GOLDEN / f)}  {f}" for f in files]
    (IN_REPO_GOLDEN / CHECKSUMS).write_text("\n".join(lines) + "\n")
    print(f"copied {len(files)} files from {args.source} to {IN_REPO_GOLDEN}; wrote {CHECKSUMS}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
