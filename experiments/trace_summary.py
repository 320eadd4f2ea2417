"""Where a traced program spends its device time, by named scope.

    python experiments/trace_summary.py TRACE.xplane.pb.gz [...] [--top 25]

Reads a trace written by ``bench_npp.py train --trace-dir D`` (a gzipped ``jax.profiler``
xplane and, beside it, the program's optimized HLO ``*.hlo.txt.gz``), converts it with xprof
(``pip install xprof``; it only runs here, not on the device machine) and sums the kernels'
device time under the first matching scope of ``SCOPES`` in their op's name: the
``jax.named_scope`` labels of ``jaxrl_arena.rollout`` / ``train`` and ``envs.npp.env``.

Prints per trace: kernel time by scope (ms, share, launches), the busy share of the traced
call's span (kernel time over wall time: a latency-bound program is far under 100%), and the
``--top`` ops by kernel time.
"""

from __future__ import annotations

import argparse
import gzip
import json
import re
import sys
import tempfile
from collections import defaultdict
from pathlib import Path

# Most specific first: an op is counted under the first scope its name contains.
SCOPES = (
    "learner", "curriculum",
    "fresh_resets/level", "fresh_resets", "auto_reset",
    "env_step/frames", "env_step/reward", "env_step/observation", "env_step",
    "final_value", "policy", "rollout",
)
_META = re.compile(r"^\s*(?:ROOT\s+)?%?([\w.\-]+)\s*=.*?metadata=\{[^}]*op_name=\"([^\"]*)\"")


def hlo_scopes(path: Path) -> dict[str, str]:
    """HLO instruction name -> its jax op_name (from the optimized HLO text)."""
    out = {}
    if not path.exists():
        return out
    with gzip.open(path, "rt") as f:
        for line in f:
            m = _META.match(line)
            if m:
                out.setdefault(m.group(1), m.group(2))
                out.setdefault(m.group(1).replace(".", "_"), m.group(2))   # GPU kernel names
    return out


def scope_of(name: str) -> str:
    """The first of ``SCOPES`` whose parts appear, in order, among the op name's components
    (``vmap(frames)`` counts as ``frames``)."""
    comps = [re.sub(r"^(?:vmap|jit|pmap)\((.*)\)$", r"\1", c) for c in name.split("/")]
    for scope in SCOPES:
        parts = iter(comps)
        if all(p in parts for p in scope.split("/")):   # in order: ``in`` consumes the iterator
            return scope
    return "other"


def trace_events(path: Path) -> list[dict]:
    try:
        from xprof.convert import raw_to_tool_data
    except ImportError as e:  # pragma: no cover - optional tool
        raise SystemExit(f"trace_summary needs xprof (pip install xprof): {e}") from e
    with tempfile.TemporaryDirectory() as tmp:
        raw = Path(tmp) / "t.xplane.pb"
        raw.write_bytes(gzip.open(path).read() if path.suffix == ".gz" else path.read_bytes())
        data, _ = raw_to_tool_data.xspace_to_tool_data([str(raw)], "trace_viewer@", {})
    return json.loads(data)["traceEvents"]


def kernels(events: list[dict], names: dict[str, str]) -> list[tuple[str, str, float, float]]:
    """(hlo op, op_name, start us, duration us) of every device kernel; on a CPU trace, of
    every XLA op event of the host's XLA threads."""
    procs = {e["pid"]: e["args"]["name"] for e in events if e.get("ph") == "M" and e["name"] == "process_name"}
    threads = {(e["pid"], e["tid"]): e["args"]["name"] for e in events
               if e.get("ph") == "M" and e["name"] == "thread_name"}
    gpu = any("/device:GPU" in p for p in procs.values())
    out = []
    for e in events:
        if e.get("ph") != "X":
            continue
        proc, thread = procs.get(e["pid"], ""), threads.get((e["pid"], e.get("tid")), "")
        args = e.get("args", {})
        if gpu:
            if "/device:GPU" not in proc or not thread.startswith("Stream"):
                continue
            op = args.get("hlo_op") or e["name"]
        else:
            if not thread.startswith("tf_XLA") or e["name"] not in names:
                continue
            op = e["name"]
        out.append((op, args.get("tf_op") or names.get(op, ""), float(e["ts"]), float(e["dur"])))
    return out


def busy_span(ks) -> tuple[float, float]:
    """(union of kernel intervals, first start to last end), us."""
    iv = sorted((t, t + d) for _, _, t, d in ks)
    busy, end = 0.0, float("-inf")
    for a, b in iv:
        if a > end:
            busy += b - a
            end = b
        elif b > end:
            busy += b - end
            end = b
    return busy, (iv[-1][1] - iv[0][0]) if iv else 0.0


def summarise(path: Path, top: int) -> None:
    names = hlo_scopes(Path(str(path).replace(".xplane.pb.gz", ".hlo.txt.gz")))
    ks = kernels(trace_events(path), names)
    by = defaultdict(lambda: [0.0, 0])
    ops = defaultdict(lambda: [0.0, 0, ""])
    for op, op_name, _, dur in ks:
        s = scope_of(op_name)
        by[s][0] += dur
        by[s][1] += 1
        ops[op][0] += dur
        ops[op][1] += 1
        ops[op][2] = op_name
    total = sum(t for t, _ in by.values())
    busy, span = busy_span(ks)
    print(f"\n### {path.name}: kernel time by scope\n")
    print(f"{len(ks):,} kernels, {total / 1e3:,.1f} ms of kernel time; busy {busy / 1e3:,.1f} ms of a "
          f"{span / 1e3:,.1f} ms span ({busy / max(span, 1e-9):.0%})\n")
    print("| scope | kernel ms | share | launches | mean us |")
    print("|---|---|---|---|---|")
    for s in list(SCOPES) + ["other"]:
        if s in by:
            t, n = by[s]
            print(f"| {s} | {t / 1e3:,.2f} | {t / max(total, 1e-9):.1%} | {n:,} | {t / max(n, 1):,.1f} |")
    print(f"\ntop {top} ops by kernel time:\n")
    print("| op | scope | op name (tail) | launches | total ms | mean us |")
    print("|---|---|---|---|---|---|")
    for op, (t, n, op_name) in sorted(ops.items(), key=lambda kv: -kv[1][0])[:top]:
        tail = "/".join(op_name.split("/")[-3:])[:70]
        print(f"| `{op}` | {scope_of(op_name)} | {tail} | {n:,} | {t / 1e3:,.2f} | {t / max(n, 1):,.1f} |")


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("traces", nargs="+", type=Path)
    p.add_argument("--top", type=int, default=25)
    args = p.parse_args(argv)
    for t in args.traces:
        summarise(t, args.top)
    return 0


if __name__ == "__main__":
    sys.exit(main())
