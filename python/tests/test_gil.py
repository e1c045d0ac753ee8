"""The GIL is released while a kernel runs: another Python thread makes progress during a long call."""

import threading
import time

import numpy as np

import alibi_attention as aa


def test_second_thread_runs_during_a_long_call():
    rng = np.random.default_rng(0)
    # Bidirectional without skipping: every (query, key) pair is computed, a call of a good fraction of
    # a second on one thread.
    q = rng.standard_normal((1, 2048, 8, 64), dtype=np.float32)
    k = rng.standard_normal((1, 2048, 8, 64), dtype=np.float32)
    stamps = []
    stop = threading.Event()

    def tick():
        while not stop.is_set():
            stamps.append(time.perf_counter())
            time.sleep(0.001)

    ticker = threading.Thread(target=tick)
    ticker.start()
    try:
        time.sleep(0.01)
        start = time.perf_counter()
        aa.attention(q, k, k, causal=False, skip_tolerance=0.0, num_threads=1)
        end = time.perf_counter()
    finally:
        stop.set()
        ticker.join()
    # Holding the GIL, the ticker could run only around the call's ends (one switch interval, 5 ms);
    # released, it ticks all through. Look at the middle half of the call only.
    lo, hi = start + 0.25 * (end - start), start + 0.75 * (end - start)
    assert end - start > 0.04, "the call was too short to tell"
    inside = [t for t in stamps if lo <= t <= hi]
    assert len(inside) >= 3, (len(inside), end - start)
