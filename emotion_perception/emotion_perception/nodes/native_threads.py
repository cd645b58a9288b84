"""The operating-system side of a node's threads: native math libraries' thread pools
capped, threads named where ``top -H`` shows them."""

from __future__ import annotations

import sys

from ..os_threads import name_os_thread  # noqa: F401 - the nodes' import of it


#: Threads each native math library (OpenBLAS, OpenMP) may use in a node process.
NATIVE_THREADS = 1


def limit_native_threads(n: int = NATIVE_THREADS) -> None:
    """Cap the BLAS/OpenMP thread pools of the libraries loaded so far at ``n``.

    A node runs tiny per-frame inference (one face, a few ms); a multi-threaded
    OpenBLAS gains nothing there, and its worker threads busy-wait between calls:
    measured on the 2-core machine, ``frame_node`` (scikit-learn SVM) used 84% of a
    core at 10 Hz with the default pools and 3% with one thread, CPU the landmark
    node needs. Call it after the node is built (model libraries are loaded then).

    OpenCV's own pool (pthreads, one thread per core; threadpoolctl does not see it) is
    capped too: the landmark node's crops (a grey conversion, a shrink and a warp of a
    few hundred pixels a side, about 0.1 ms) were split across it, and its thread
    spun after each piece: 0.6 ms of CPU per frame at 30 Hz for that 0.1 ms of work
    (one-process pipeline, per-thread CPU, 2026-12-02).
    """
    cv2 = sys.modules.get("cv2")
    if cv2 is not None:
        cv2.setNumThreads(n)
    try:
        from threadpoolctl import threadpool_limits
    except ImportError:  # comes with scikit-learn; without it there is nothing to cap
        return
    threadpool_limits(limits=n)
