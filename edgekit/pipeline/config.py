"""Pipeline configuration: a TOML file, or defaults for `zoo:NAME`."""
from __future__ import annotations

import tomllib
from dataclasses import asdict, dataclass, field
from pathlib import Path

from edgekit.errors import UsageError

#: variant name → (format, precision, how it is made)
VARIANTS = {
    "onnx-fp32": ("onnx", "fp32", "export + optimize"),
    "onnx-int8": ("onnx", "int8 static QDQ", "quantize --mode static"),
    "onnx-int8-dynamic": ("onnx", "int8 dynamic", "quantize --mode dynamic"),
    "onnx-fp16": ("onnx", "fp16", "quantize --mode fp16"),
    "tflite-fp32": ("tflite", "fp32", "convert onnx-fp32"),
    "tflite-fp16": ("tflite", "fp16 weights", "convert onnx-fp32 --precision fp16"),
    "tflite-dynamic": ("tflite", "int8 dynamic-range", "convert onnx-int8-dynamic"),
    "tflite-int8": ("tflite", "int8 full-integer", "convert onnx-int8"),
}
RUNTIME_OF = {"onnx": "onnxruntime", "tflite": "litert"}


@dataclass
class PipelineConfig:
    spec: str
    weights: str | None = None
    input_shapes: list[str] = field(default_factory=list)
    dynamic_axes: list[str] = field(default_factory=list)  # export's --dynamic-axis INPUT:DIM=LABEL, e.g. tokens:1=seq
    zoo_dynamic: bool = False            # export's --zoo-dynamic: the dynamic axes the zoo entry declares
    dims: dict = field(default_factory=dict)  # LABEL → size that evaluation, random calibration and bench feed
                                              # (bench's --dim); a label not given runs at its export example size
    calibration: str = "random"          # .npz / .npy directory / image directory, or "random"
    preprocess: str | dict | None = None  # image folders: edgekit.processing's spec (KEY=VALUE;... text, a table, or a file)
    eval: str | None = None              # .npz keyed by input name, optional `labels`
    variants: list[str] = field(default_factory=lambda: list(VARIANTS))
    speed: str = "search"                # the quantizer's speed step: search | check | off (off: builds are reproducible)
    threads: list[int] = field(default_factory=lambda: [2])
    providers: list[str] = field(default_factory=lambda: ["cpu"])
    runs: int | None = None
    min_time: float = 1.0
    max_drop: float = 0.01               # accuracy gate: at most this drop (absolute, 0..1) vs float
    latency_budget_ms: float | None = None
    fail_below: float | None = None      # exit non-zero when the recommended variant's metric is below this
    eval_samples: int = 200
    devices: list = field(default_factory=list)  # edgekit.remote.Device: each variant is also benchmarked there
    ray: str | None = None               # "auto" or a Ray address: variant builds run as Ray tasks (ray_sweep.py)
    base_dir: str = "."                  # paths in the config are relative to the config file

    def path(self, value: str | None) -> str | None:
        if value is None or value == "random" or value.startswith("zoo:"):
            return value
        p = Path(value)
        return str(p if p.is_absolute() else Path(self.base_dir) / p)

    def preprocess_spec(self) -> str | dict | None:
        """[data] preprocess as edgekit.processing reads it: a table or `KEY=VALUE;...` text as written, a .toml/.json
        file relative to this config (a path was all the old check accepted, though the value was read as settings)."""
        if isinstance(self.preprocess, str) and "=" not in self.preprocess:
            return self.path(self.preprocess)
        return self.preprocess

    def as_dict(self) -> dict:
        return asdict(self)


def load_config(source: str, overrides: dict | None = None) -> PipelineConfig:
    """Read CONFIG.toml, or build defaults for zoo:NAME / any export SPEC; apply CLI overrides."""
    if source.endswith(".toml"):
        path = Path(source)
        if not path.is_file():
            raise UsageError(f"The pipeline config '{source}' does not exist.", hint="Check the path.")
        try:
            raw = tomllib.loads(path.read_text())
        except (tomllib.TOMLDecodeError, UnicodeDecodeError) as exc:
            raise UsageError(f"The pipeline config '{source}' is not valid TOML: {exc}.",
                             hint="See examples/pipeline/*.toml for the format.") from exc
        config = _from_toml(raw, source, path.parent)
        config.base_dir = str(path.parent)
    else:
        config = PipelineConfig(spec=source)
    for key, value in (overrides or {}).items():
        if value is not None:
            setattr(config, key, value)
    _check(config)
    return config


_SECTIONS = {
    "model": {"spec": "spec", "weights": "weights", "input_shapes": "input_shapes", "dynamic_axes": "dynamic_axes",
              "zoo_dynamic": "zoo_dynamic", "dims": "dims"},
    "data": {"calibration": "calibration", "preprocess": "preprocess", "eval": "eval", "eval_samples": "eval_samples"},
    "variants": {"include": "variants", "speed": "speed"},
    "bench": {"threads": "threads", "providers": "providers", "runs": "runs", "min_time": "min_time"},
    "gate": {"max_drop": "max_drop", "latency_budget_ms": "latency_budget_ms", "fail_below": "fail_below"},
    "sweep": {"ray": "ray"},
}


#: top-level keys that are not sections: `[[devices]]` tables and the ssh_config they share (edgekit.remote's format)
_DEVICE_KEYS = ("devices", "ssh_config")


def _from_toml(raw: dict, source: str, base_dir: str | Path = ".") -> PipelineConfig:
    unknown = [k for k in raw if k not in _SECTIONS and k not in _DEVICE_KEYS]
    values = {}
    for section, keys in _SECTIONS.items():
        table = raw.get(section, {})
        if not isinstance(table, dict):
            raise UsageError(f"In '{source}', [{section}] must be a table.")
        unknown += [f"{section}.{k}" for k in table if k not in keys]
        values.update({keys[k]: v for k, v in table.items() if k in keys})
    if unknown:
        raise UsageError(f"Unknown keys in '{source}': {', '.join(unknown)}.",
                         hint="Known: " + ", ".join(f"{s}.{k}" for s, ks in _SECTIONS.items() for k in ks)
                              + ", [[devices]] tables and ssh_config.")
    if "spec" not in values:
        raise UsageError(f"'{source}' has no [model] spec.", hint='Add: [model]\nspec = "zoo:lenet" (or file.py:factory).')
    if isinstance(values.get("threads"), int):
        values["threads"] = [values["threads"]]
    if any(k in raw for k in _DEVICE_KEYS):
        from edgekit.remote import devices_from_config
        values["devices"] = devices_from_config({k: raw[k] for k in _DEVICE_KEYS if k in raw},
                                                base_dir=base_dir, source=f"'{source}'")
    return PipelineConfig(**values)


_TYPES = {"spec": str, "weights": (str, type(None)), "input_shapes": list, "dynamic_axes": list, "dims": dict,
          "calibration": str,
          "preprocess": (str, dict, type(None)), "eval": (str, type(None)), "variants": list, "threads": list,
          "providers": list, "runs": (int, type(None)), "min_time": (int, float), "max_drop": (int, float),
          "latency_budget_ms": (int, float, type(None)), "fail_below": (int, float, type(None)), "eval_samples": int,
          "devices": list, "speed": str, "ray": (str, type(None))}


def _check(config: PipelineConfig) -> None:
    wrong = [f"{k} = {getattr(config, k)!r}" for k, t in _TYPES.items()
             if not isinstance(getattr(config, k), t) or isinstance(getattr(config, k), bool)]
    wrong += [f"zoo_dynamic = {config.zoo_dynamic!r}"] if not isinstance(config.zoo_dynamic, bool) else []
    wrong += [f"dynamic_axes = {config.dynamic_axes!r}"] if not all(isinstance(a, str) for a in config.dynamic_axes) else []
    wrong += [f"dims.{k} = {v!r}" for k, v in (config.dims if isinstance(config.dims, dict) else {}).items() if not isinstance(v, int) or isinstance(v, bool) or v < 1]
    if wrong:
        raise UsageError(f"Pipeline settings of the wrong type: {', '.join(wrong)}.",
                         hint="Lists are written [\"a\", \"b\"] in TOML, numbers without quotes; see "
                              "examples/pipeline/README.md.")
    if config.runs is not None and config.runs < 1 or config.min_time <= 0 or config.eval_samples < 1:
        raise UsageError("runs, min_time and eval_samples must be positive.")
    bad = [v for v in config.variants if v not in VARIANTS]
    if bad:
        raise UsageError(f"Unknown variants {bad}.", hint=f"Choose from: {', '.join(VARIANTS)}.")
    if config.speed not in ("search", "check", "off"):
        raise UsageError(f"variants.speed must be search, check or off, got {config.speed!r}.",
                         hint="search keeps layers in float where quantizing them is slower here (timed, so it can "
                              "differ between runs); off skips timing.")
    if not config.variants:
        raise UsageError("The pipeline has no variants to build.", hint="List at least one, e.g. onnx-fp32.")
    if not 0 <= config.max_drop <= 1:
        raise UsageError(f"max_drop must be a fraction between 0 and 1 (e.g. 0.01 for one point), got {config.max_drop}.")
    if any(not isinstance(t, int) or t < 1 for t in config.threads):
        raise UsageError(f"threads must be positive integers, got {config.threads}.")
    for name in ("calibration", "eval", "weights"):
        value = config.path(getattr(config, name))
        if value and value != "random" and not Path(value).exists():
            raise UsageError(f"The {name} path '{value}' does not exist.",
                             hint="Paths in a config file are relative to the config file.")
    if config.preprocess is not None:  # its keys now; its values against the model's input when calibrating
        from edgekit.processing import Preprocess, parse_spec
        unknown = sorted(set(parse_spec(config.preprocess_spec())) - set(Preprocess.KEYS) - set(Preprocess.LEGACY_KEYS))
        if unknown:
            raise UsageError(f"[data] preprocess has unknown option(s) {unknown}.",
                             hint=f"Known options: {', '.join(Preprocess.KEYS)} (see edgekit.processing).")
