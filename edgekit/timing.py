"""The timing loop: latency of a callable or a runtime session with almost no overhead over the runtime's own run call.

Its own module (numpy only) because bench's subprocess worker, profile, quantize's latency check and bundle's
--bench all time with it, and none of them needs bench's orchestration, subprocess protocol or memory probes.
"""
from __future__ import annotations

import time
from dataclasses import dataclass, field

import numpy as np

DEFAULT_MIN_TIME = 1.0   # seconds of timed runs when neither runs nor min_time is given
MIN_RUNS = 10            # ...but at least this many runs,
MAX_RUNS = 100_000       # ...and at most this many


@dataclass
class LatencyStats:
    """Per-inference latency in milliseconds."""

    samples_ms: list[float]
    min: float
    p50: float
    p90: float
    p99: float
    mean: float
    std: float
    first_ms: float  # the first call on the session (pays lazy allocation and kernel selection)
    warmup: int = 0
    stopped_early: bool = False  # the time limit ended the loop before runs/min_time were reached
    extra: dict = field(default_factory=dict)

    @classmethod
    def from_ns(cls, samples_ns: list[int], first_ns: int, warmup: int = 0, stopped_early: bool = False) -> "LatencyStats":
        ms = np.asarray(samples_ns, dtype=np.float64) / 1e6
        p50, p90, p99 = (float(v) for v in np.percentile(ms, [50, 90, 99]))
        return cls(samples_ms=ms.tolist(), min=float(ms.min()), p50=p50, p90=p90, p99=p99, mean=float(ms.mean()),
                   std=float(ms.std()), first_ms=first_ns / 1e6, warmup=warmup, stopped_early=stopped_early)

    @property
    def runs(self) -> int:
        return len(self.samples_ms)

    @property
    def inferences_per_s(self) -> float:
        return 1000.0 / self.mean if self.mean > 0 else float("inf")

    def as_dict(self, samples: bool = True) -> dict:
        d = {"runs": self.runs, "warmup": self.warmup, "first_ms": self.first_ms, "min_ms": self.min,
             "p50_ms": self.p50, "p90_ms": self.p90, "p99_ms": self.p99, "mean_ms": self.mean, "std_ms": self.std,
             "inferences_per_s": self.inferences_per_s, "stopped_early": self.stopped_early}
        if samples:
            d["samples_ms"] = list(self.samples_ms)
        return d


def time_callable(fn, *, runs: int | None = None, min_time: float | None = None, warmup: int = 5,
                  time_limit: float | None = None, on_timing_start=None) -> LatencyStats:
    """Time a zero-argument callable: one first call, `warmup` untimed calls, then the timed loop.

    The loop runs `runs` times if given, else until `min_time` seconds (default 1 s) of samples and at least
    MIN_RUNS. `time_limit` (seconds, whole call) ends any phase early and marks the result `stopped_early`.
    `on_timing_start(first_ms, warmup_mean_ms)` is called once, outside the timed loop (for progress displays).
    """
    if runs is not None and runs < 1:
        from edgekit.errors import UsageError
        raise UsageError(f"--runs must be at least 1, got {runs}.")
    clock = time.perf_counter_ns
    start = clock()
    limit_ns = int(time_limit * 1e9) if time_limit else None
    t0 = clock()
    fn()
    first = clock() - t0
    stopped = False
    warm_start = clock()
    done = 0
    for _ in range(warmup):
        if limit_ns is not None and clock() - start > limit_ns:
            stopped = True
            break
        fn()
        done += 1
    if on_timing_start is not None:
        on_timing_start(first / 1e6, (clock() - warm_start) / 1e6 / done if done else first / 1e6)
    if runs is None:
        budget_ns = int((min_time if min_time is not None else DEFAULT_MIN_TIME) * 1e9)
        min_runs, max_runs = MIN_RUNS, MAX_RUNS
    else:
        budget_ns, min_runs, max_runs = 0, runs, runs
    samples: list[int] = []
    append = samples.append
    total = 0
    n = 0
    while n < max_runs:
        t0 = clock()
        fn()
        t1 = clock()
        append(t1 - t0)
        total += t1 - t0
        n += 1
        if n >= min_runs and total >= budget_ns:
            break
        if limit_ns is not None and t1 - start > limit_ns:
            stopped = n < min_runs or total < budget_ns
            break
    return LatencyStats.from_ns(samples, first, warmup=warmup, stopped_early=stopped)


def time_session(session, feeds, *, runs: int | None = None, min_time: float | None = None, warmup: int = 5,
                 time_limit: float | None = None, on_timing_start=None) -> LatencyStats:
    """Latency of `session` (an edgekit.runtimes Session) on `feeds`, timing only the runtime's own run call.

    Feeds are checked and converted once (`session.prepare`); each timed call is then `session.runner(prepared)`,
    i.e. ORT's `sess.run` or LiteRT's set_tensor + invoke + get_tensor, timed with perf_counter_ns.
    """
    prepared = session.prepare(feeds)
    return time_callable(session.runner(prepared), runs=runs, min_time=min_time, warmup=warmup,
                         time_limit=time_limit, on_timing_start=on_timing_start)


def interleaved_p50_ms(sessions: dict, feeds: dict, runs: int, warmup: int, rounds: int = 5) -> dict:
    """Median ms per session, timed in interleaved rounds so machine-load drifts hit every session alike (the side
    by side figures the benchmarks report). `feeds`: {session key: that session's feeds}."""
    prepared = {k: s.prepare(feeds[k]) for k, s in sessions.items()}
    for k, s in sessions.items():
        for _ in range(warmup):
            s.run_prepared(prepared[k])
    times: dict = {k: [] for k in sessions}
    per_round = max(1, runs // rounds)
    for _ in range(rounds):
        for k, s in sessions.items():
            for _ in range(per_round):
                start = time.perf_counter()
                s.run_prepared(prepared[k])
                times[k].append(time.perf_counter() - start)
    return {k: float(np.median(v)) * 1e3 for k, v in times.items()}
