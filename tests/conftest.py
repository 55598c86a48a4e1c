"""Shared fixtures: exported zoo models (cached per test session and worker), seeded RNG."""
from __future__ import annotations

import os
from pathlib import Path

import numpy as np
import pytest

os.environ.setdefault("OMP_NUM_THREADS", "1")


@pytest.fixture(scope="session")
def zoo_onnx(tmp_path_factory):
    """zoo_onnx(name, *shapes, dynamic_batch=False) → path of an exported, validated ONNX file (cached)."""
    from edgekit.converters.torch_export import export

    cache: dict = {}
    root = tmp_path_factory.mktemp("zoo")

    def make(name: str, *shapes: str, dynamic_batch: bool = False, exporter: str = "auto") -> Path:
        key = (name, shapes, dynamic_batch, exporter)
        if key not in cache:
            stem = "_".join([name, *shapes, "dyn" if dynamic_batch else "", exporter]).replace("=", "-").replace(":", "-")
            path = root / f"{stem}.onnx"
            export(f"zoo:{name}", path, input_shapes=list(shapes) or None, dynamic_batch=dynamic_batch,
                   exporter=exporter)
            cache[key] = path
        return cache[key]

    return make


@pytest.fixture(scope="session")
def trained_detector():
    """trained_detector(steps) → the zoo's tiny detector trained `steps` steps on 400 seeded shapes (deterministic,
    cached): the detection test modules share one training run per length instead of each training its own."""
    cache: dict = {}

    def train(steps: int):
        if steps not in cache:
            import torch
            from edgekit.zoo import detection as zoo
            torch.set_num_threads(1)
            images, labels = zoo.shapes_dataset(400, seed=0)
            cache[steps] = zoo.train(zoo.tiny_detector(), images, labels, steps=steps, batch=16)
        return cache[steps]

    return train


@pytest.fixture
def rng():
    return np.random.default_rng(0)


@pytest.fixture(scope="module")
def local_ray():
    """A local Ray instance (2 CPUs) for the tests that dispatch to Ray; shut down after the module."""
    ray = pytest.importorskip("ray", reason='Ray is an optional extra: pip install "edgekit[ray]"')
    ray.init(num_cpus=2, include_dashboard=False, log_to_driver=False, configure_logging=False)
    yield ray
    ray.shutdown()
