"""The pipeline's variant builds dispatched to a local Ray instance give the same variants as the serial run."""
from __future__ import annotations

import os

import pytest

from edgekit.pipeline import PARENT, pipeline
from edgekit.pipeline.cache import file_hash
from edgekit.pipeline.ray_sweep import lanes

VARIANTS = ["onnx-int8", "onnx-int8-dynamic", "tflite-fp32", "tflite-int8"]


def test_lanes_follow_the_variant_tree():
    names = ["onnx-fp32", "onnx-int8", "onnx-int8-dynamic", "onnx-fp16", "tflite-fp32", "tflite-fp16",
             "tflite-dynamic", "tflite-int8"]
    assert sorted(lanes(names, PARENT)) == sorted([["onnx-int8", "tflite-int8"], ["onnx-int8-dynamic", "tflite-dynamic"],
                                                   ["onnx-fp16", "tflite-fp16"], ["tflite-fp32"]])


def test_variants_built_on_local_ray_match_the_serial_run(local_ray, tmp_path):
    # speed "off": the quantizer's speed search is timed, so not even two serial runs need agree byte for byte
    settings = {"variants": VARIANTS, "runs": 5, "eval_samples": 8, "threads": [1], "speed": "off"}
    serial = pipeline("zoo:lenet", tmp_path / "serial", overrides=settings)
    events = []
    on_ray = pipeline("zoo:lenet", tmp_path / "ray", overrides=settings | {"ray": "auto"},
                      notify=lambda step, state: events.append((step, state)))
    assert local_ray.is_initialized()  # the pipeline joined the instance it found and left it running

    def by_variant(report):
        return {r["variant"]: r for r in report["rows"]}
    s, r = by_variant(serial), by_variant(on_ray)
    assert list(s) == list(r) == VARIANTS
    for name in VARIANTS:
        assert s[name]["status"] == r[name]["status"] == "ok", (s[name]["reason"], r[name]["reason"])
        assert file_hash(s[name]["path"]) == file_hash(r[name]["path"]), f"{name} differs when built on Ray"
        assert r[name]["accuracy"] == pytest.approx(s[name]["accuracy"])
        assert s[name]["built_on"] == "here"
        assert r[name]["built_on"].startswith("ray:") and not r[name]["built_on"].endswith(f":{os.getpid()}")
    assert ("tflite-int8", "done") in events and ("onnx-int8", "done") in events


def test_the_ray_option_of_the_command_overrides_the_configs_sweep_and_builds_on_ray(local_ray, tmp_path):
    import json

    from click.testing import CliRunner

    from edgekit.cli import main
    config = tmp_path / "lenet.toml"
    # an address that would never answer: the option must win (and this process already joined the local instance)
    config.write_text('[model]\nspec = "zoo:lenet"\n[variants]\ninclude = ["tflite-fp32"]\nspeed = "off"\n'
                      '[bench]\nruns = 5\nthreads = [1]\n[data]\neval_samples = 8\n'
                      '[sweep]\nray = "ray://head.invalid:10001"\n')
    out = tmp_path / "out"
    result = CliRunner().invoke(main, ["pipeline", str(config), "-o", str(out), "--ray", "auto"])
    assert result.exit_code == 0, result.output
    report = json.loads((out / "report.json").read_text())
    assert report["config"]["ray"] == "auto"
    row = next(r for r in report["rows"] if r["variant"] == "tflite-fp32")
    assert row["status"] == "ok" and row["built_on"].startswith("ray:"), row
