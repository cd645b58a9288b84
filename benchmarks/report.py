"""Copy the tables in ``benchmarks/results/*.md`` into ``docs/benchmarks.md`` between
its ``<!-- tables:start -->`` / ``<!-- tables:end -->`` markers, so the document always
shows exactly what the scripts printed (a table measured on ROS 2 Jazzy,
``<name>_jazzy.md``, right after Kilted's).

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
SUM_START, SUM_END = "<!-- summary:start -->", "<!-- summary:end -->"
#: tables written by another benchmark's script, shown right after it
EXTRA = {"latency": ("resources",),
         # side_by_side.py runs by hand (one of them needs an older checkout): see docs/benchmarks.md
         "latency_in_process": ("resources_in_process", "side_by_side_code", "side_by_side_layout",
                                "side_by_side_code_1202_one", "side_by_side_code_1202_sep",
                                "side_by_side_code_1202_exec")}


def _load(name: str) -> dict | None:
    import json

    f = RESULTS / f"{name}.json"
    return json.loads(f.read_text()) if f.is_file() else None


def summary() -> str:
    """The four targets of the issue, judged from the saved results."""
    rows = []
    lm = _load("landmark_node")
    if lm:
        d = lm["data"]["640x480/1"]
        r = d["node_ms"]["p50"] / d["bare_ms"]["p50"]
        rows.append(("landmark node within 1.10x of bare MediaPipe (1 face, 640x480)",
                     f"{d['node_ms']['p50']:.1f} ms vs {d['bare_ms']['p50']:.1f} ms = {r:.2f}x (median); "
                     f"mean {d['node_ms']['mean'] / d['bare_ms']['mean']:.2f}x", "met" if r <= 1.10 else "not met"))
    for name, layout in (("latency", "separate processes"), ("latency_in_process", "one process")):
        lat = _load(name)
        if not lat:
            continue
        bare = lat["data"]["bare_mediapipe_ms"]
        for topic in ("emotion", "attention"):
            d = lat["data"].get(topic)
            if not d:
                rows.append((f"{layout}: end-to-end latency to `{topic}`", "node not running", "not measured"))
                continue
            p50, p95 = d["latency_ms"]["p50"], d["latency_ms"]["p95"]
            lost = d["sent"] - d["received"]
            ok = p50 <= 1.5 * bare["p50"] and p95 <= bare["p95"] + 10 and lost == 0
            rows.append((f"{layout}, 30 Hz: `{topic}` p50 <= 1.5x bare p50, p95 <= bare p95 + 10 ms, nothing lost",
                         f"p50 {p50:.1f} vs {1.5 * bare['p50']:.1f} ms, p95 {p95:.1f} vs {bare['p95']:.1f} + 10 ms, "
                         f"{lost} of {d['sent']} lost", "met" if ok else "not met"))
        cpu = lat["data"].get("cpu_ms_per_frame")
        if cpu:
            r6 = cpu["six_nodes_without_image_model"] / cpu["landmark"] if cpu["landmark"] else float("nan")
            rows.append((f"{layout}: six nodes' CPU per frame <= 0.5x the landmark node's (image model's "
                         f"inference excluded)", f"{cpu['six_nodes_without_image_model']:.2f} vs "
                         f"{cpu['landmark']:.2f} ms = {r6:.2f}x (whole pipeline {cpu['total']:.2f} ms, bare "
                         f"MediaPipe {cpu['bare_mediapipe']:.2f} ms)", "met" if r6 <= 0.5 else "not met"))
            fusion = cpu.get("nodes", {}).get("emotion_fusion")
            if fusion is not None:
                rows.append(("fusion node <= 1 ms CPU per frame", f"{fusion:.2f} ms",
                             "met" if fusion <= 1.0 else "not met"))
    for name, layout in (("throughput", "separate processes"), ("throughput_in_process", "one process")):
        tp = _load(name)
        if tp:
            best, fps = tp["data"]["max_rate_no_drops_hz"], tp["data"]["bare_mediapipe_max_fps"]
            r = best / fps if fps else float("nan")
            rows.append((f"{layout}: whole pipeline >= 0.8x bare MediaPipe's max frame rate",
                         f"{best:g} Hz with no loss vs {fps:.1f} fps = {r:.2f}x", "met" if r >= 0.8 else "not met"))
    soak = _load("soak")
    if soak:
        nodes = {k: v for k, v in soak["data"].items() if isinstance(v, dict) and "rss_mb_first" in v}
        worst = max(nodes, key=lambda n: (nodes[n]["rss_mb_last"] - nodes[n]["rss_mb_first"]) / nodes[n]["rss_mb_first"])
        g = (nodes[worst]["rss_mb_last"] - nodes[worst]["rss_mb_first"]) / nodes[worst]["rss_mb_first"]
        leak = any(v["fds_last"] > v["fds_first"] or v["threads_last"] > v["threads_first"] for v in nodes.values())
        rows.append((f"soak: RSS growth < 5%, no fd/thread leak ({soak['title'].split(':')[1].split('(')[0].strip()})",
                     f"worst {worst} {100 * g:+.1f}%; fds/threads {'GROW' if leak else 'flat'}",
                     "met" if g < 0.05 and not leak else "not met"))
    out = ["| target | measured | verdict |", "|---|---|---|"]
    out += [f"| {a} | {b} | {c} |" for a, b, c in rows]
    return "\n".join(out)


def main() -> int:
    text = DOC.read_text()
    if START not in text or END not in text:
        print(f"{DOC} has no {START} ... {END} markers", file=sys.stderr)
        return 1
    parts = []
    order = []
    for name in BENCHMARKS:
        order.append(name)
        order += list(EXTRA.get(name, ()))
    for name in (n for base in order for n in (base, f"{base}_jazzy")):  # a Jazzy run's table after Kilted's
        f = RESULTS / f"{name}.md"
        if f.is_file():
            parts.append(f'<a id="{name}"></a>\n\n' + f.read_text().replace("### ", "### ", 1))
    head, rest = text.split(START, 1)
    _, tail = rest.split(END, 1)
    text = head + START + "\n\n" + "\n".join(parts) + "\n" + END + tail
    if SUM_START in text and SUM_END in text:
        h, r = text.split(SUM_START, 1)
        _, t = r.split(SUM_END, 1)
        text = h + SUM_START + "\n\n" + summary() + "\n\n" + SUM_END + t
    DOC.write_text(text)
    print(f"{DOC}: {len(parts)} tables")
    return 0


if __name__ == "__main__":
    sys.exit(main())
