"""CPU cost of the text exposition of 10,000 probe series, in this process (no network).

Two figures, best of ``--repeat`` runs, CPU time of this process only (``time.process_time``,
so other work on the machine disturbs them less than wall time would):

- every series re-rendered (what a scrape pays for the series whose probe ran since the
  last scrape: at 10,000 probes every 30 s and a scrape every 15 s, about half of them);
- the page assembled from the cached text (what every scrape pays), with its size;
- one ``/probe`` answer (blackbox's format) of an HTTP probe with blackbox's 16 samples.

``--tree DIR`` measures the code of another checkout (e.g. a git worktree of the commit
before a change) in the same way, for a side-by-side comparison::

    git worktree add --detach /tmp/before HEAD~1
    python bench/exposition.py --tree /tmp/before
    python bench/exposition.py
"""

from __future__ import annotations

import argparse
import importlib.util
import sys
import time
from pathlib import Path
from typing import Any

PACKAGES = {
    "slaprobe": "slaprobe",
    "slaprobe.exporter": "exporter",
    "slaprobe.probes": "probes",
    "slaprobe.alerts": "alerts",
    "slaprobe.dashboards": "dashboards",
}


def use_tree(tree: Path) -> None:
    """Import slaprobe from ``tree`` (a checkout of this repository) instead of the installed one."""

    class Finder:
        @classmethod
        def find_spec(cls, name: str, path: Any = None, target: Any = None) -> Any:
            folder = PACKAGES.get(name)
            if folder is None:
                return None
            root = tree / folder
            return importlib.util.spec_from_file_location(
                name, root / "__init__.py", submodule_search_locations=[str(root)]
            )

    sys.meta_path.insert(0, Finder)


def as_bytes(store: Any) -> list[Any]:
    """The probe families' bytes as ``/metrics`` writes them (before the exposition layer: str pieces)."""
    pieces = list(store.render_families())
    if pieces and isinstance(pieces[0], str):
        return [piece.encode() for piece in pieces]
    return pieces


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--series", type=int, default=10_000)
    parser.add_argument("--repeat", type=int, default=12)
    parser.add_argument("--tree", type=Path, help="measure the slaprobe of this checkout instead")
    args = parser.parse_args()
    if args.tree is not None:
        use_tree(args.tree.resolve())

    from slaprobe.exporter.store import ProbeMeta, ResultStore
    from slaprobe.probes.result import ProbeResult

    store = ResultStore()
    buckets = (0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0)
    metas = [ProbeMeta("svc", f"p{i:05d}", "http", "t", "default", 30, 10, buckets, 0.5) for i in range(args.series)]
    store.sync(metas)
    phases = {"resolve": 0.0001, "connect": 0.001, "tls": 0.0, "processing": 0.01, "transfer": 0.0005}
    result = ProbeResult(True, 0.012, phases=phases)
    for meta in metas:
        store.record(meta.key, result, now=1_700_000_000.5)
    series = store.series()
    render_best = page_best = float("inf")
    size = 0
    for _ in range(args.repeat):
        for s in series:
            s._text = None  # as if every probe had run since the last scrape
        started = time.process_time()
        for s in series:
            s.render()
        render_best = min(render_best, time.process_time() - started)
        started = time.process_time()
        page = [piece if isinstance(piece, bytes) else b"".join(piece) for piece in as_bytes(store)]
        page_best = min(page_best, time.process_time() - started)
        size = sum(map(len, page))
    probe_best = probe_answer_seconds(args.repeat)
    import slaprobe.exporter.store as module

    print(f"slaprobe from {Path(module.__file__).parents[1]}")
    print("| series | render every series, ms CPU | page from cache, ms CPU | page MB | one /probe answer, µs CPU |")
    print("|---|---|---|---|---|")
    print(
        f"| {args.series} | {render_best * 1000:.1f} | {page_best * 1000:.1f} | {size / 1e6:.1f} "
        f"| {probe_best * 1e6:.1f} |"
    )
    return 0


def probe_answer_seconds(repeat: int, answers: int = 20_000) -> float:
    """CPU seconds of one ``render_probe_metrics`` of a successful HTTP probe (best of ``repeat``)."""
    from slaprobe.exporter.blackbox import render_probe_metrics
    from slaprobe.probes.result import ProbeResult, Sample

    phases = {"resolve": 0.0001, "connect": 0.0004, "tls": 0.0, "processing": 0.0012, "transfer": 0.0001}
    samples = (
        Sample("probe_dns_lookup_time_seconds", 0.0001),
        Sample("probe_failed_due_to_regex", 0),
        Sample("probe_http_content_length", 3),
        *(Sample("probe_http_duration_seconds", v, (("phase", k),)) for k, v in phases.items()),
        Sample("probe_http_redirects", 0),
        Sample("probe_http_ssl", 0),
        Sample("probe_http_status_code", 200),
        Sample("probe_http_uncompressed_body_length", 3),
        Sample("probe_http_version", 1.1),
        Sample("probe_ip_addr_hash", 3_030_184_592),
        Sample("probe_ip_protocol", 4),
    )
    result = ProbeResult(True, 0.0019, phases=phases, samples=samples)
    best = float("inf")
    for _ in range(repeat):
        started = time.process_time()
        for _ in range(answers):
            render_probe_metrics(result)
        best = min(best, (time.process_time() - started) / answers)
    return best


if __name__ == "__main__":
    sys.exit(main())
