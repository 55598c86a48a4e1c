#!/usr/bin/env bash
# aarch64 correctness check (never timing: everything runs under qemu-user emulation).
#
# Builds an arm64 Debian root (debootstrap + qemu-user-static, binfmt_misc), installs the device extras there
# from the package index (numpy click rich ai-edge-litert onnxruntime) and edgekit from a wheel of this tree
# (--no-deps), then loads and runs a float TFLite, a full-INT8 TFLite and an ONNX model (zoo:lenet, made here on
# x86) with edgekit.runtimes on arm64 and compares the outputs with x86's on the same inputs.
# Needs root (debootstrap, chroot, binfmt_misc). The root is cached in $EDGEKIT_ARM64_ROOT (default
# /tmp/edgekit-arm64-root); delete it to rebuild. Usage: sudo benchmarks/aarch64_check.sh
set -euo pipefail
cd "$(dirname "$0")/.."
REPO=$PWD
ROOT=${EDGEKIT_ARM64_ROOT:-/tmp/edgekit-arm64-root}
MIRROR=${DEBIAN_MIRROR:-http://deb.debian.org/debian}
WORK=$(mktemp -d /tmp/edgekit-aarch64-XXXXXX)
trap 'umount "$ROOT/proc" 2>/dev/null || true; rm -rf "$WORK"' EXIT
say() { printf '\n== %s\n' "$*"; }

say "binfmt_misc + qemu-aarch64"
[ -e /proc/sys/fs/binfmt_misc/register ] || mount -t binfmt_misc binfmt_misc /proc/sys/fs/binfmt_misc
[ -e /proc/sys/fs/binfmt_misc/qemu-aarch64 ] || update-binfmts --enable qemu-aarch64
head -2 /proc/sys/fs/binfmt_misc/qemu-aarch64

if [ ! -e "$ROOT/.complete" ]; then
    say "debootstrap arm64 bookworm → $ROOT"
    rm -rf "$ROOT"
    debootstrap --arch=arm64 --variant=minbase --include=python3,python3-venv,ca-certificates \
        bookworm "$ROOT" "$MIRROR" > "$WORK/debootstrap.log" 2>&1 || { tail -20 "$WORK/debootstrap.log"; exit 1; }
    touch "$ROOT/.complete"
fi
cp /etc/resolv.conf "$ROOT/etc/resolv.conf"
# the host's CA bundle, for an index behind a TLS-inspecting proxy
cp /etc/ssl/certs/ca-certificates.crt "$ROOT/etc/ssl/certs/ca-certificates.crt"
mountpoint -q "$ROOT/proc" || mount -t proc proc "$ROOT/proc"
in_arm() { chroot "$ROOT" /usr/bin/env -i PATH=/opt/device/bin:/usr/bin:/bin HOME=/root \
    ${HTTPS_PROXY:+HTTPS_PROXY=$HTTPS_PROXY} ${https_proxy:+https_proxy=$https_proxy} \
    PIP_CERT=/etc/ssl/certs/ca-certificates.crt PIP_DISABLE_PIP_VERSION_CHECK=1 "$@"; }
echo "arm64 root: $(in_arm uname -m), $(in_arm python3 --version)"

say "device venv: numpy click rich ai-edge-litert onnxruntime from the package index"
[ -x "$ROOT/opt/device/bin/python" ] || in_arm python3 -m venv /opt/device
in_arm pip install -q numpy click rich ai-edge-litert onnxruntime
say "edgekit from a wheel of this tree (--no-deps)"
mkdir -p "$WORK/src"
cp pyproject.toml README.md "$WORK/src/"
for d in edgekit runtimes converters examples/zoo; do
    mkdir -p "$WORK/src/$(dirname $d)" && cp -r "$d" "$WORK/src/$d"
done
find "$WORK/src" -name __pycache__ -prune -exec rm -rf {} +
python -m pip wheel -q --no-deps --no-build-isolation -w "$WORK/wheels" "$WORK/src"
mkdir -p "$ROOT/tmp/ek" && cp "$WORK"/wheels/edgekit-*.whl "$ROOT/tmp/ek/"
in_arm pip install -q --no-deps --force-reinstall /tmp/ek/edgekit-*.whl
in_arm pip list 2>/dev/null | grep -iE "^(edgekit|numpy|onnxruntime|ai-edge-litert|torch|onnx) "

say "x86: zoo:lenet → ONNX, float TFLite, INT8 TFLite; reference outputs"
M="$WORK/models"; mkdir -p "$M"
edgekit export zoo:lenet -o "$M/lenet.onnx" >/dev/null
edgekit convert "$M/lenet.onnx" -o "$M/lenet_float.tflite" >/dev/null
edgekit quantize "$M/lenet.onnx" -o "$M/lenet_int8.onnx" --mode static >/dev/null
edgekit convert "$M/lenet_int8.onnx" -o "$M/lenet_int8.tflite" >/dev/null
cat > "$M/run.py" <<'EOF'
"""Run each model on the same seeded inputs with edgekit.runtimes; save outputs (and the platform) to an npz."""
import platform, sys
import numpy as np
import edgekit.runtimes as rt
from edgekit.inputs import random_inputs
out = {"machine": np.array(platform.machine())}
for name in sys.argv[2:]:
    with rt.load(f"{sys.argv[1]}/{name}", threads=1) as s:
        feeds = random_inputs(s.inputs, 0, {}, None)
        for k, v in s.run(feeds).items():
            out[f"{name}:{k}"] = v
        out[f"{name}:runtime"] = np.array(s.runtime)
bad = sorted(m for m in ("torch", "onnx") if m in sys.modules)
assert not bad, f"heavy modules imported: {bad}"
np.savez(sys.argv[1] + f"/out_{platform.machine()}.npz", **out)
EOF
NAMES="lenet.onnx lenet_float.tflite lenet_int8.tflite"
python "$M/run.py" "$M" $NAMES
cp -r "$M" "$ROOT/tmp/ek/models"

say "arm64 (qemu): load and run the same models"
in_arm python /tmp/ek/models/run.py /tmp/ek/models $NAMES
cp "$ROOT/tmp/ek/models/out_aarch64.npz" "$M/"

say "compare arm64 with x86 (correctness only; no timing under emulation)"
python - "$M" <<'EOF'
import sys
import numpy as np
m = sys.argv[1]
x86, arm = np.load(f"{m}/out_x86_64.npz"), np.load(f"{m}/out_aarch64.npz")
print(f"x86: {x86['machine']}, arm: {arm['machine']}")
print(f"{'output':44} {'runtime':12} {'max |arm-x86|':>14} {'/ max|x86|':>11} {'argmax same':>12}  verdict")
ok = True
for key in x86.files:
    if key == "machine" or key.endswith(":runtime"):
        continue
    a, b = x86[key].astype(np.float64), arm[key].astype(np.float64)
    name = key.split(":")[0]
    diff = float(np.abs(a - b).max())
    rel = diff / max(float(np.abs(a).max()), 1e-12)
    same_top = bool((a.argmax(-1) == b.argmax(-1)).all())
    tol = 2e-2 if "int8" in name else 1e-4   # int8: rounding of one quantization step; float: float noise
    good = rel <= tol and same_top
    ok &= good
    print(f"{key:44} {str(x86[name + ':runtime']):12} {diff:14.3g} {rel:11.3g} {str(same_top):>12}  "
          f"{'ok' if good else 'MISMATCH'} (tol {tol:g})")
print("aarch64 check:", "PASSED" if ok else "FAILED")
sys.exit(0 if ok else 1)
EOF
