"""Where the reference engines' golden recordings live, for conformance tests and CLIs.

The repository carries its own copy under ``tests/data/golden/`` (``arena/`` and ``npp/``,
each with its ``FORMAT.md``), with ``SHA256SUMS`` listing every file. ``$JAXRL_GOLDEN_DIR``
points elsewhere (a folder holding ``arena/`` and ``npp/``). The data is never edited here:
``python tools/refresh_golden.py SOURCE`` replaces the copy and rewrites the checksum list.
"""

from __future__ import annotations

import hashlib
import os
from pathlib import Path

REPO_ROOT = Path(__file__).resolve().parents[1]
IN_REPO_GOLDEN = REPO_ROOT / "tests" / "data" / "golden"
CHECKSUMS = "SHA256SUMS"


def golden_dir() -> Path:
    """``$JAXRL_GOLDEN_DIR`` if set, else the repository's copy (``tests/data/golden``)."""
    env = os.environ.get("JAXRL_GOLDEN_DIR")
    path = Path(env) if env else IN_REPO_GOLDEN
    if not path.is_dir():
        origin = "JAXRL_GOLDEN_DIR" if env else "the repository copy"
        raise FileNotFoundError(
            f"golden data not found at {path} ({origin}); run from a clone of the repository "
            "or set JAXRL_GOLDEN_DIR to a folder holding arena/ and npp/")
    return path


def sha256_of(path: Path) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            h.update(block)
    return h.hexdigest()


def read_checksums(root: Path) -> dict[str, str]:
    """``{relative path: sha256}`` from ``root/SHA256SUMS`` (``sha256sum`` format)."""
    out = {}
    for line in (root / CHECKSUMS).read_text().splitlines():
        if line.strip():
            digest, rel = line.split(maxsplit=1)
            out[rel.lstrip("*")] = digest
    return out


def data_files(root: Path) -> list[str]:
    """Every data file under ``root`` (relative, sorted), the checksum list excluded."""
    return sorted(str(p.relative_to(root)) for p in root.rglob("*")
                  if p.is_file() and p.name != CHECKSUMS)
