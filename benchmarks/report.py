"""Copy the tables in ``benchmarks/results/*.md`` into ``docs/benchmarks.md`` between
its ``<!-- tables:start -->`` / ``<!-- tables:end -->`` markers, so the document always
shows exactly what the scripts printed (a table measured on ROS 2 Jazzy,
``<name>_jazzy.md``, right after Kilted's).

    .venv/bin/python benchmarks/report.py
"""

from __future__ import annotations

import pathlib
import sys

from latency import EXPRESSION_OVER_EMOTION_MS, IDLE_NODE_MS, TARGETS
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
                                "side_by_side_code_1202_exec"),
         "latency_hri": ("resources_hri",), "latency_hri_in_process": ("resources_hri_in_process",),
         "latency_hri_2faces": ("resources_hri_2faces",),
         "latency_hri_in_process_2faces": ("resources_hri_in_process_2faces",)}


def _load(name: str) -> dict | None:
    import json

    f = RESULTS / f"{name}.json"
    return json.loads(f.read_text()) if f.is_file() else None


def summary() -> str:
    """The targets (issue 22's, stated against bare MediaPipe in the same run), judged
    from the saved results."""
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
        p50_ms, p95_ms, cpu_x = TARGETS[layout]
        bare = lat["data"]["bare_mediapipe_ms"]
        for topic in ("emotion", "attention"):
            d = lat["data"].get(topic)
            if not d:
                rows.append((f"{layout}: end-to-end latency to `{topic}`", "node not running", "not measured"))
                continue
            p50, p95 = d["latency_ms"]["p50"], d["latency_ms"]["p95"]
            lost = d["sent"] - d["received"]
            ok = p50 <= bare["p50"] + p50_ms and p95 <= bare["p95"] + p95_ms and lost == 0
            rows.append((f"{layout}, 30 Hz: `{topic}` p50 <= bare p50 + {p50_ms:g} ms, p95 <= bare p95 + "
                         f"{p95_ms:g} ms, nothing lost",
                         f"p50 {p50:.1f} = bare {bare['p50']:.1f} + {p50 - bare['p50']:.1f} ms, p95 {p95:.1f} = "
                         f"bare {bare['p95']:.1f} + {p95 - bare['p95']:.1f} ms, {lost} of {d['sent']} lost",
                         "met" if ok else "not met"))
        cpu = lat["data"].get("cpu_ms_per_frame")
        if cpu:
            r = cpu["total"] / cpu["bare_mediapipe"] if cpu["bare_mediapipe"] else float("nan")
            rows.append((f"{layout}: whole pipeline CPU per image <= {cpu_x:g}x bare MediaPipe's",
                         f"{cpu['total']:.2f} vs {cpu['bare_mediapipe']:.2f} ms = {r:.2f}x",
                         "met" if r <= cpu_x else "not met"))
        idle = lat["data"].get("idle_nodes_ms_per_frame") or {}
        if idle:
            rows.append((f"{layout}: an idle node <= {IDLE_NODE_MS:g} ms CPU per camera image",
                         ", ".join(f"{n} {ms:.3f} ms" for n, ms in idle.items()),
                         "met" if max(idle.values()) <= IDLE_NODE_MS else "not met"))
    for name, layout in (("latency_hri", "separate processes"), ("latency_hri_in_process", "one process"),
                         ("latency_hri_2faces", "separate processes, two faces"),
                         ("latency_hri_in_process_2faces", "one process, two faces")):
        lat = _load(name)
        if not lat:
            continue
        d = lat["data"].get("expression_vs_emotion")
        what = (f"{layout}, 30 Hz, REP-155 producer: `expression` p50 <= `emotion` p50 + "
                f"{EXPRESSION_OVER_EMOTION_MS:g} ms (the images both answered)")
        if not d:
            rows.append((what, "not answered", "not measured"))
        else:
            e50, x50 = d["emotion_ms"]["p50"], d["expression_ms"]["p50"]
            rows.append((what, f"{x50:.1f} = emotion {e50:.1f} + {x50 - e50:.1f} ms over {d['images']} images",
                         "met" if x50 <= e50 + EXPRESSION_OVER_EMOTION_MS else "not met"))
        h = lat["data"].get("hri_faces")
        if h:
            sent = lat["data"]["emotion"]["sent"] if "emotion" in lat["data"] else h["tracked"]
            share = h["expressions"] / max(1, h["with_face"])
            rows.append((f"{layout}, 30 Hz, REP-155: `tracked` for every image, an `expression` for >= 99% of the "
                         "faces in the tracked lists",
                         f"{h['tracked']} of {sent} tracked lists; {h['expressions']} of {h['with_face']} faces "
                         f"({share:.1%}); {len(h['face_ids'])} face id(s)",
                         "met" if h["tracked"] == sent and share >= 0.99 else "not met"))
    wake = _load("lazy_wake")
    if wake:
        d = wake["data"]
        rows.append((f"a lazy node ({d['node']}), its own process: idle <= {IDLE_NODE_MS:g} ms CPU per input; "
                     "first output within 1 s of a subscriber",
                     f"idle {d['idle_ms']:.3f} ms per array; first output after {max(d['wake_s']):.2f} s (max of "
                     f"{len(d['wake_s'])})",
                     "met" if d["idle_ms"] <= IDLE_NODE_MS and max(d["wake_s"]) <= 1.0 else "not met"))
    for name, layout in (("throughput", "separate processes"), ("throughput_in_process", "one process")):
        tp = _load(name)
        if tp:
            best, fps = tp["data"]["max_rate_no_drops_hz"], tp["data"]["bare_mediapipe_max_fps"]
            r = best / fps if fps else float("nan")
            rows.append((f"{layout}: whole pipeline's maximum rate >= 0.8x bare MediaPipe's",
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
