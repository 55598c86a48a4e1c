"""Integer types and ranges that are fast *and* exact on this CPU's int8 dot-product instructions.

x86 without VNNI multiplies u8 x s8 pairs with VPMADDUBSW, whose 16-bit intermediate sums can saturate:
ONNX Runtime's guidance is 7-bit weights (reduce_range) there. With VNNI (VPDPBUSD, 32-bit accumulation) there
is no saturation, and u8 activations x s8 weights is the pair its kernels are built for (measured on an AVX-512
VNNI CPU: S8S8 QDQ was slower than float on MobileNetV2, U8S8 2x faster). Arm dotprod (SDOT/UDOT) has no
saturation either, and ONNX Runtime's Arm kernels favour signed activations.
"""
from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class HardwareChoice:
    activation_type: str  # "uint8" | "int8"
    weight_type: str  # "int8" | "uint8"
    reduce_range: bool
    isa: str  # what was detected, in words
    reason: str

    def as_dict(self) -> dict:
        return {"activation_type": self.activation_type, "weight_type": self.weight_type,
                "reduce_range": self.reduce_range, "isa": self.isa, "reason": self.reason}


def detect_isa(features: set[str] | None = None) -> str:
    """'x86-vnni', 'x86-avx2' (AVX2/AVX-512 without VNNI), 'x86' (older), 'arm-dotprod', 'arm' or 'unknown'."""
    if features is None:
        from edgekit.envinfo import cpu_features
        features = cpu_features()
    if "vnni" in features or features & {"avx512_vnni", "avx_vnni"}:
        return "x86-vnni"
    if features & {"avx2", "avx512", "avx512bw"}:
        return "x86-avx2"
    if "dotprod" in features:
        return "arm-dotprod"
    if "neon" in features:
        return "arm"
    if features & {"sse4_1", "sse4_2", "avx"}:
        return "x86"
    return "unknown"


def choose(features: set[str] | None = None, *, mode: str = "static") -> HardwareChoice:
    """The activation/weight types and reduce_range for `mode` ('static' or 'dynamic') on this CPU."""
    isa = detect_isa(features)
    if isa == "x86-vnni":
        return HardwareChoice("uint8", "int8", False, "x86 with VNNI (int8 dot products, 32-bit accumulation)",
                              "U8S8 runs on VNNI without saturation and is the fastest pair there; "
                              "S8S8 measured slower than float on depthwise-heavy models")
    if isa == "x86-avx2":
        return HardwareChoice("uint8", "int8", True, "x86 with AVX2/AVX-512 but no VNNI",
                              "U8S8 uses VPMADDUBSW, whose 16-bit sums can saturate; 7-bit weights "
                              "(reduce_range) avoid it at a small accuracy cost")
    if isa == "x86":
        return HardwareChoice("uint8", "uint8", False, "x86 without AVX2",
                              "no fast int8 dot product; U8U8 cannot saturate")
    if isa == "arm-dotprod":
        act = "uint8" if mode == "dynamic" else "int8"
        return HardwareChoice(act, "int8", False, "Arm with dotprod (SDOT/UDOT)",
                              "dot-product instructions accumulate in 32 bits, so no saturation; "
                              "signed activations suit ONNX Runtime's Arm kernels")
    return HardwareChoice("uint8", "int8", False, f"{isa} CPU", "no int8 dot-product instruction detected; "
                          "U8S8 is ONNX Runtime's general default")
