"""Copy the tables in ``benchmarks/results/*.md`` into ``docs/benchmarks.md`` between
its ``<!-- tables:start -->`` / ``<!-- tables:end -->`` markers, so the document always
shows exactly what the scripts printed.

    .venv/bin/python benchmarks/report.py
"""

from __future__ import annotations

import pathlib
import sys

from run_all import BENCHMARKS

REPO = pathlib.Path(__file__).resolve().parents[1]
DOC = REPO / "docs" / "benchmarks.md"
RESULTS = REPO / "benchmarks" / "results"
START, END = "<!-- tables:start -->", "<!-- tables:end -->"
EXTRA = ("resources",)  # written by latency.py


def main() -> int:
    text = DOC.read_text()
    if START not in text or END not in text:
        print(f"{DOC} has no {START} ... {END} markers", file=sys.stderr)
        return 1
    parts = []
    order = []
    for name in BENCHMARKS:
        order.append(name)
        if name == "latency":
            order += list(EXTRA)
    for name in order:
        f = RESULTS / f"{name}.md"
        if f.is_file():
            parts.append(f'<a id="{name}"></a>\n\n' + f.read_text().replace("### ", "### ", 1))
    head, rest = text.split(START, 1)
    _, tail = rest.split(END, 1)
    DOC.write_text(head + START + "\n\n" + "\n".join(parts) + "\n" + END + tail)
    print(f"{DOC}: {len(parts)} tables")
    return 0


if __name__ == "__main__":
    sys.exit(main())
