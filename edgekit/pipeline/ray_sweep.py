"""Variant builds dispatched to Ray (`pipeline(..., ray="auto" | ADDRESS)`), never to a scheduler of our own.

After the float model (onnx-fp32) every variant descends from it along one lane — onnx-int8 → tflite-int8,
onnx-int8-dynamic → tflite-dynamic, onnx-fp16 → tflite-fp16, tflite-fp32 — and lanes share nothing, so each lane
is one Ray task running the same build steps as a serial run (same step cache, same artifacts). Evaluation and
benchmarking stay on this machine, one after another: timings taken while builds compete for cores mean nothing.

"auto" joins the Ray instance this machine already belongs to, or starts a local one; an address ("ray://head:10001",
"10.0.0.5:6379") joins that cluster. The workers read and write the pipeline's output directory, so on a cluster of
several machines it and the config's data files must be on a filesystem they share. The quantizer's speed search
(`[variants] speed = "search"`, the default) times candidates on the worker, where other lanes compete for the same
cores: its choices can then differ from a serial run's; `speed = "off"` makes every build reproducible.
`ray_session` is how anything in edgekit (and benchmarks/coverage.py --ray) joins Ray.
"""
from __future__ import annotations

import os
from contextlib import contextmanager
from dataclasses import replace
from pathlib import Path

from edgekit.errors import EnvironmentProblem, UsageError


def lanes(names: list[str], parent: dict[str, str | None]) -> list[list[str]]:
    """`names` (parents before children) grouped by the child of onnx-fp32 they descend from, in build order."""
    def root(name: str) -> str:
        while parent[name] not in (None, "onnx-fp32"):
            name = parent[name]
        return name
    grouped: dict[str, list[str]] = {}
    for name in names:
        if parent[name] is not None:
            grouped.setdefault(root(name), []).append(name)
    return list(grouped.values())


def _ray(what: str):
    try:
        import ray
    except ImportError as exc:
        raise EnvironmentProblem(f"Dispatching {what} to Ray needs the package 'ray' ({exc}).",
                                 hint='Install it with: pip install "edgekit[ray]".') from exc
    return ray


@contextmanager
def ray_session(address: str, what: str = "the pipeline's variants"):
    """The `ray` module, joined to a Ray instance for the block: the one this process already joined (left running),
    else `address` — "auto" for the cluster this machine belongs to (`ray start`, RAY_ADDRESS) or a new local
    instance, which is shut down at the end of the block (its workers with it), or a cluster's address."""
    if not isinstance(address, str) or not address.strip():
        raise UsageError(f"The Ray address must be 'auto' or a cluster address, got {address!r}.",
                         hint='e.g. --ray auto, --ray ray://head:10001 or --ray 10.0.0.5:6379.')
    ray = _ray(what)
    started_here = not ray.is_initialized()
    if started_here:
        try:
            ray.init(address=None if address == "auto" else address, include_dashboard=False, log_to_driver=False,
                     configure_logging=False)
        except (ConnectionError, ValueError, RuntimeError) as exc:
            raise EnvironmentProblem(f"Could not join the Ray cluster at '{address}': {str(exc).strip()[:300]}",
                                     hint="Check the address (ray status on the head node prints it), or use "
                                          "--ray auto for a local instance.") from None
    try:
        yield ray
    finally:
        if started_here:
            ray.shutdown()


def build_lanes_on_ray(run, variants: dict, lane_names: list[list[str]], address: str) -> None:
    """Build every lane as one Ray task; the Variants in `variants` are updated in place, notify events replayed."""
    with ray_session(address) as ray:
        build = ray.remote(_build_lane)
        # workers start in their own directories: every path they get is absolute
        config = replace(run.config, base_dir=str(Path(run.config.base_dir).resolve()))
        fp32 = variants["onnx-fp32"]
        fp32 = replace(fp32, path=fp32.path.resolve() if fp32.path else None)
        refs = [build.remote(config, str(run.out.resolve()), str(run.exported.resolve()), fp32, lane)
                for lane in lane_names]
        pending = refs
        while pending:  # as each lane finishes, so progress shows while the others run
            done, pending = ray.wait(pending, num_returns=1)
            built, events = ray.get(done[0])
            for step, state in events:
                run.notify(step, state)
            for v in built:
                variants[v.name] = v


def _build_lane(config, out: str, exported: str, fp32, lane: list[str]):
    """Runs in a Ray worker: the serial build steps for one lane; returns the Variants and the progress events."""
    from edgekit.pipeline import Variant, _Run
    from edgekit.pipeline.cache import StepCache
    events: list[tuple[str, str]] = []
    run = _Run(config, Path(out), StepCache(Path(out)), lambda step, state: events.append((step, state)))
    run.exported = Path(exported)
    variants = {"onnx-fp32": fp32} | {name: Variant(name) for name in lane}
    worker = f"ray:{_node_id()}:{os.getpid()}"
    for name in lane:
        run.build(variants[name], variants)
        variants[name].built_on = worker
    return [variants[name] for name in lane], events


def _node_id() -> str:
    import ray
    return ray.get_runtime_context().get_node_id()[:8]
