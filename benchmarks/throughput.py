"""Sustained throughput: the highest camera rate the whole pipeline (every node in its
own process, or with ``--in-process`` all in one ``emotion-perception pipeline``
process) holds with no frame dropped, next to bare MediaPipe's own maximum frame rate
on the same frames; CPU and memory per process at each rate.

Rates are tried in increasing order, each for ``--seconds-per-rate``, and a frame
counts as held when the last stage (fused ``emotion`` and ``attention`` where they
run, otherwise the deepest running output) received it.

    .venv/bin/python benchmarks/throughput.py [--seconds-per-rate 10] [--quick]
        [--nodes landmark,attention] [--rates 60,90,120] [--workers 2] [--in-process]
"""

from __future__ import annotations

import argparse
import sys
import time

from common import Table, bare_max_fps, compose_frames, isolate_domain, ratio
from procs import FINAL_TOPICS, NODES, Camera, NodeProcesses, Sampler, landmark_workers

RATES_HZ = (10, 15, 20, 25, 30, 40, 50, 60, 75, 90, 105, 120, 135)


def main(argv=None) -> Table:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--seconds-per-rate", type=float, default=10.0)
    ap.add_argument("--quick", action="store_true", help="4 s per rate")
    ap.add_argument("--data", help="shared data directory")
    ap.add_argument("--final-only", action="store_true",
                    help="listen to emotion and attention only, as a behaviour tree does (with --in-process the "
                         "messages between the nodes then stay in the process; a listener on an intermediate "
                         "topic sends that topic through DDS)")
    ap.add_argument("--nodes", default=",".join(NODES),
                    help="comma-separated nodes to run (default: all); e.g. 'landmark' for the front alone")
    ap.add_argument("--workers", type=int, help="landmark_node's workers parameter (MediaPipe landmarkers); "
                    "default: config/params.yaml's")
    ap.add_argument("--in-process", action="store_true",
                    help="run the nodes in one emotion-perception pipeline process instead of one process each")
    ap.add_argument("--rates", default=",".join(str(r) for r in RATES_HZ), help="comma-separated camera rates, Hz")
    a = ap.parse_args(argv)
    per_rate = 4.0 if a.quick else a.seconds_per_rate
    isolate_domain()
    frames = compose_frames(640, 480, 1, 90, a.data)
    rows = []
    best = 0.0
    best_by_topic: dict[str, float] = {}
    with NodeProcesses(names=a.nodes.split(","), in_process=a.in_process,
                       landmark_params={"max_faces": 1, **({"workers": a.workers} if a.workers else {})}) as procs:
        running = procs.running()
        cam = Camera.for_nodes(procs, frames, final_only=a.final_only)
        try:
            topics = cam.answering
            finals = [t for t in FINAL_TOPICS if t in topics] or topics[-1:]
            time.sleep(2.0)
            index = 1000
            for rate in [float(r) for r in a.rates.split(",")]:
                cam.stream(rate, 1.0, start_index=index)  # settle at the new rate, not counted
                index += int(rate)
                time.sleep(1.1)  # a fresh /diagnostics message
                drops0 = cam.diag_value("landmark_node", "dropped_total")
                transport0 = cam.diag_value("landmark_node", "lost_in_transport_total")
                sampler = Sampler(procs.pids(), period_s=0.5)
                sampler.start()
                t0 = time.monotonic()
                sent = cam.stream(rate, per_rate, start_index=index)
                index += len(sent)
                time.sleep(1.5)
                sampler.stop()
                node_drops = cam.diag_value("landmark_node", "dropped_total") - drops0
                # camera images that never reached the landmark node (its reader's queue
                # overwritten while its thread was behind, or lost by DDS)
                transport = cam.diag_value("landmark_node", "lost_in_transport_total") - transport0
                got = {t: len(cam.latencies_ms(t, sent)) for t in topics}
                lost = max(len(sent) - got[t] for t in finals)
                mesh_lost = len(sent) - got["faces/mesh"] if "faces/mesh" in got else "not listened to"
                cpu = {n: sampler.stats(n, t0)["cpu_percent"] for n in procs.pids()}
                rows.append((rate, len(sent), {t: got[t] for t in finals}, lost, mesh_lost, node_drops, transport, cpu))
                lost_idx = [k for k, s in enumerate(sent) if any(s not in cam.got[t] for t in finals)]
                print(f"  {rate} Hz: sent {len(sent)}, lost at the end {lost}, at faces/mesh {mesh_lost} "
                      f"(landmark node dropped {node_drops:g}, lost in transport {transport:g}; received "
                      f"{', '.join(f'{t} {got[t]}' for t in finals)}; frames lost at the end, indices {lost_idx[:20]})", file=sys.stderr)
                for tp in topics:
                    if got[tp] == len(sent):
                        best_by_topic[tp] = float(rate)
                if lost == 0:
                    best = float(rate)
                if (lost if isinstance(mesh_lost, str) else mesh_lost) > 0.2 * len(sent):  # the front is saturated
                    break
        finally:
            cam.close()
    fps, _ = bare_max_fps(frames, repeats=3)
    layout = "every node in one process" if a.in_process else "every node in its own process"
    t = Table("throughput_in_process" if a.in_process else "throughput",
              f"Sustained throughput, {layout}, 640x480 one face, {per_rate:g} s per rate",
              ["rate Hz", "sent", "lost at the last stage (" + ", ".join(finals) + ")", "lost at faces/mesh",
               "dropped by landmark node (/diagnostics)", "camera images lost before the landmark node (/diagnostics)",
               "total CPU % of 2 cores", "busiest process"])
    for rate, sent, got, lost, mesh_lost, node_drops, transport, cpu in rows:
        busiest = max(cpu, key=lambda n: cpu[n]) if cpu else "-"
        t.add(rate, sent, lost, mesh_lost, node_drops, transport, sum(cpu.values()) / 2.0,
              f"{busiest} {cpu.get(busiest, 0):.0f}%")
    t.data = {"rows": [{"rate_hz": r[0], "sent": r[1], "received": r[2], "lost_final": r[3],
                        "lost_mesh": r[4], "landmark_dropped": r[5], "lost_in_transport": r[6],
                        "cpu_percent": r[7]} for r in rows],
              "max_rate_no_drops_hz": best, "bare_mediapipe_max_fps": fps, "final_topics": finals,
              "max_rate_no_drops_by_topic_hz": best_by_topic}
    r = ratio(best, fps)
    t.notes.append(f"Highest rate with no frame lost: {best:g} Hz; bare MediaPipe's maximum on the same frames: "
                   f"{fps:.1f} frames/s; ratio {r:.2f} (target >= 0.8: {'met' if r >= 0.8 else 'NOT met'}).")
    t.notes.append("Highest rate with no loss per topic: " + ", ".join(
        f"{tp} {best_by_topic.get(tp, 0):g} Hz" for tp in topics) + ".")
    t.notes.append(f"landmark_node workers: {a.workers or landmark_workers()}"
                   f"{'' if a.workers else ' (config/params.yaml)'}.")
    t.notes.append(f"Nodes running: {', '.join(running)}" + (
        f"; not running: {', '.join(f'{n} ({w})' for n, w in procs.unavailable.items())}" if procs.unavailable
        else "") + ".")
    t.done()
    return t


if __name__ == "__main__":
    main(sys.argv[1:])
