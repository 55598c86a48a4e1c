#!/usr/bin/env bash
# aarch64 correctness check (never timing: everything runs under qemu-user emulation).
#
# Builds an arm64 Debian bookworm root (debootstrap --variant=minbase, in two stages: the first on x86, the second
# under qemu-aarch64-static through binfmt_misc), installs the device extras there from the package index (numpy
# click rich ai-edge-litert onnxruntime, binary wheels only) and edgekit from a wheel of this tree (--no-deps), then
# loads and runs a float ONNX, an INT8 (QDQ) ONNX, a float TFLite and a full-INT8 TFLite model (zoo:lenet, made
# here on x86 with edgekit export / quantize / convert) with edgekit.runtimes on arm64, on the same 8 seeded inputs
# as on x86, and prints PASS/FAIL per model with the largest absolute difference. Exit 0 only if every model passes.
#
# Needs root (debootstrap, chroot, binfmt_misc) and installs debootstrap, qemu-user-static and binfmt-support when
# missing. The root is cached in $EDGEKIT_ARM64_ROOT (default /tmp/edgekit-arm64-root) and its .debs next to it, so
# a rerun takes a minute or two; the first build's second stage runs dpkg under emulation and takes 10-20 minutes.
# Delete the root to rebuild it. Usage: sudo benchmarks/aarch64_check.sh
set -euo pipefail
cd "$(dirname "$0")/.."
REPO=$PWD
ROOT=${EDGEKIT_ARM64_ROOT:-/tmp/edgekit-arm64-root}
DEBS=${EDGEKIT_ARM64_DEBS:-$ROOT.debs}     # downloaded .debs, kept so a rebuild of the root needs no network
# the Debian mirror this machine's apt already uses (the first deb822 or one-line source), unless DEBIAN_MIRROR is set
MIRROR=${DEBIAN_MIRROR:-$(grep -hoE 'https?://[^ ]+/debian/?$' /etc/apt/sources.list.d/*.sources /etc/apt/sources.list 2>/dev/null | head -1)}
WORK=$(mktemp -d /tmp/edgekit-aarch64-XXXXXX)
unmount_root() {   # everything mounted under the root (ours, or debootstrap's /proc and /sys), deepest first
    awk -v r="$ROOT/" 'index($2, r) == 1 {print $2}' /proc/mounts | sort -r | while read -r m; do umount -l "$m"; done
}
cleanup() { unmount_root; rm -rf "$WORK"; }
trap cleanup EXIT
say() { printf '\n== %s\n' "$*"; }

say "host tools: debootstrap, qemu-user-static"
if ! command -v debootstrap >/dev/null || ! command -v qemu-aarch64-static >/dev/null; then
    apt-get update -q >/dev/null && apt-get install -y -q debootstrap qemu-user-static binfmt-support >/dev/null
fi

say "binfmt_misc: qemu-aarch64"
mountpoint -q /proc/sys/fs/binfmt_misc || mount -t binfmt_misc none /proc/sys/fs/binfmt_misc
if [ ! -e /proc/sys/fs/binfmt_misc/qemu-aarch64 ]; then
    update-binfmts --enable qemu-aarch64 2>/dev/null || true
fi
if [ ! -e /proc/sys/fs/binfmt_misc/qemu-aarch64 ]; then
    # what update-binfmts / systemd-binfmt would register; F: the kernel opens qemu now, so the root needs no copy
    printf ':qemu-aarch64:M::\x7fELF\x02\x01\x01\x00\x00\x00\x00\x00\x00\x00\x00\x00\x02\x00\xb7\x00:\xff\xff\xff\xff\xff\xff\xff\x00\xff\xff\xff\xff\xff\xff\xff\xff\xfe\xff\xff\xff:/usr/bin/qemu-aarch64-static:F' \
        > /proc/sys/fs/binfmt_misc/register
fi
sed -n '1,2p' /proc/sys/fs/binfmt_misc/qemu-aarch64

# Two stages so a slow or interrupted second stage (dpkg under emulation: python3.11-minimal's byte-compilation
# alone takes minutes) resumes without downloading again; .stage1 / .complete mark what is done.
if [ ! -e "$ROOT/.complete" ]; then
    mkdir -p "$DEBS"
    if [ ! -e "$ROOT/.stage1" ]; then
        say "debootstrap stage 1 (x86, download + unpack): arm64 bookworm minbase → $ROOT"
        unmount_root
        if awk -v r="$ROOT/" 'index($2, r) == 1' /proc/mounts | grep -q .; then
            echo "still mounted under $ROOT; refusing to delete it"; exit 1
        fi
        rm -rf --one-file-system "$ROOT"
        debootstrap --foreign --arch=arm64 --variant=minbase --cache-dir="$DEBS" \
            --include=python3,python3-venv,ca-certificates \
            bookworm "$ROOT" "$MIRROR" > "$ROOT.stage1.log" 2>&1 || { tail -20 "$ROOT.stage1.log"; exit 1; }
        touch "$ROOT/.stage1"
    fi
    say "debootstrap stage 2 (arm64 under qemu; minutes); log: $ROOT.stage2.log"
    chroot "$ROOT" /debootstrap/debootstrap --second-stage > "$ROOT.stage2.log" 2>&1 \
        || { tail -20 "$ROOT.stage2.log"; echo "stage 2 failed; rerun to retry, or rm -rf $ROOT to rebuild"; exit 1; }
    touch "$ROOT/.complete"
fi
cp /etc/resolv.conf "$ROOT/etc/resolv.conf"
# the host's CA bundle, for an index behind a TLS-inspecting proxy
cp /etc/ssl/certs/ca-certificates.crt "$ROOT/etc/ssl/certs/ca-certificates.crt"
mountpoint -q "$ROOT/proc" || mount -t proc proc "$ROOT/proc"
# No /sys: with the host's (x86) CPU lists and /proc/cpuinfo, the runtimes' cpuinfo crashes under qemu-user 7.2
# (SIGSEGV); without them it only warns and the runtimes use their generic Arm kernels.
in_arm() { chroot "$ROOT" /usr/bin/env -i PATH=/opt/device/bin:/usr/bin:/bin HOME=/root \
    ${HTTPS_PROXY:+HTTPS_PROXY=$HTTPS_PROXY} ${https_proxy:+https_proxy=$https_proxy} \
    PIP_CERT=/etc/ssl/certs/ca-certificates.crt PIP_DISABLE_PIP_VERSION_CHECK=1 "$@"; }
echo "arm64 root: $(in_arm uname -m), Debian $(cat "$ROOT/etc/debian_version"), $(in_arm python3 --version)," \
     "$(qemu-aarch64-static --version | head -1)"
# a step's chatter goes to a log, shown only when the step fails
quiet() { "$@" > "$WORK/step.log" 2>&1 || { cat "$WORK/step.log"; echo "failed: $*"; exit 1; }; }

say "device venv: numpy click rich ai-edge-litert onnxruntime from the package index"
[ -x "$ROOT/opt/device/bin/python" ] || in_arm python3 -m venv /opt/device
in_arm pip install -q --only-binary=:all: numpy click rich ai-edge-litert onnxruntime  # no source builds under qemu
say "edgekit from a wheel of this tree (--no-deps)"
mkdir -p "$WORK/src"
cp pyproject.toml README.md "$WORK/src/"
for d in edgekit runtimes converters examples/zoo; do
    mkdir -p "$WORK/src/$(dirname $d)" && cp -r "$d" "$WORK/src/$d"
done
find "$WORK/src" -name __pycache__ -prune -exec rm -rf {} +
python -m pip wheel -q --no-deps --no-build-isolation -w "$WORK/wheels" "$WORK/src"
WHEEL=$(basename "$WORK"/wheels/edgekit-*.whl)
rm -rf "$ROOT/tmp/ek" && mkdir -p "$ROOT/tmp/ek" && cp "$WORK/wheels/$WHEEL" "$ROOT/tmp/ek/"
in_arm pip install -q --no-deps --force-reinstall "/tmp/ek/$WHEEL"
in_arm pip list 2>/dev/null | grep -iE "^(edgekit|numpy|onnxruntime|ai-edge-litert|torch|onnx) "

say "x86: zoo:lenet → ONNX, float TFLite, INT8 ONNX (QDQ) and INT8 TFLite; reference outputs"
M="$WORK/models"; mkdir -p "$M"
quiet edgekit export zoo:lenet -o "$M/lenet.onnx"
quiet edgekit convert "$M/lenet.onnx" -o "$M/lenet_float.tflite"
# calibration from the distribution the check feeds (seeded normal inputs); --speed off / --allow-slower: these
# models are for the Arm side, and how fast int8 is on this x86 machine is beside the point
python - "$M" <<'EOF'
import sys
import numpy as np
import edgekit.runtimes as rt
from edgekit.inputs import random_inputs
with rt.load(f"{sys.argv[1]}/lenet.onnx") as s:
    rows = [random_inputs(s.inputs, 100 + i, {}, None) for i in range(32)]
np.savez(f"{sys.argv[1]}/calib.npz", **{k: np.concatenate([r[k] for r in rows]) for k in rows[0]})
EOF
quiet edgekit quantize "$M/lenet.onnx" -o "$M/lenet_int8.onnx" --mode static --calib "$M/calib.npz" \
    --speed off --allow-slower
quiet edgekit convert "$M/lenet_int8.onnx" -o "$M/lenet_int8.tflite"
(cd "$M" && ls -l -- *.onnx *.tflite | awk '{printf "  %-20s %8d bytes\n", $NF, $5}')
cat > "$M/run.py" <<'EOF'
"""Run each model on the same 8 seeded inputs with edgekit.runtimes; save outputs (and the platform) to an npz."""
import platform, sys
import numpy as np
import edgekit.runtimes as rt
from edgekit.inputs import random_inputs
out = {"machine": np.array(platform.machine())}
for name in sys.argv[2:]:
    with rt.load(f"{sys.argv[1]}/{name}", threads=1) as s:
        results = [s.run(random_inputs(s.inputs, seed, {}, None)) for seed in range(8)]
        for k in results[0]:
            out[f"{name}:{k}"] = np.concatenate([r[k] for r in results])
        out[f"{name}:runtime"] = np.array(s.runtime)
bad = sorted(m for m in ("torch", "onnx") if m in sys.modules)
assert not bad, f"heavy modules imported: {bad}"
np.savez(sys.argv[1] + f"/out_{platform.machine()}.npz", **out)
EOF
NAMES="lenet.onnx lenet_int8.onnx lenet_float.tflite lenet_int8.tflite"
python "$M/run.py" "$M" $NAMES 2>/dev/null
rm -rf "$ROOT/tmp/ek/models" && cp -r "$M" "$ROOT/tmp/ek/models"

say "arm64 (qemu): load and run the same models on the same inputs"
in_arm python /tmp/ek/models/run.py /tmp/ek/models $NAMES 2> "$WORK/arm.log" \
    || { cat "$WORK/arm.log"; echo "failed: running the models on arm64"; exit 1; }
n=$(grep -ci cpuinfo "$WORK/arm.log" || true)
[ "$n" = 0 ] || echo "($n cpuinfo warnings: the emulated root has no /sys, so the runtimes cannot detect CPU features;" \
                     "what they compute is checked below)"
grep -viE "cpuinfo|XNNPACK delegate" "$WORK/arm.log" || true
cp "$ROOT/tmp/ek/models/out_aarch64.npz" "$M/"

say "compare arm64 with x86 (correctness only; no timing under emulation)"
python - "$M" $NAMES <<'EOF'
import sys
import numpy as np
m, names = sys.argv[1], sys.argv[2:]
x86, arm = np.load(f"{m}/out_x86_64.npz"), np.load(f"{m}/out_aarch64.npz")
print(f"reference: {x86['machine']}; checked: {arm['machine']}; 8 seeded inputs per model")
print(f"{'model':20} {'runtime':12} {'max |arm-x86|':>14} {'/ max|x86|':>11} {'argmax same':>12}  verdict")
failed = 0
for name in names:
    keys = [k for k in x86.files if k.startswith(name + ":") and not k.endswith(":runtime")]
    a = np.concatenate([x86[k].astype(np.float64).ravel() for k in keys])
    b = np.concatenate([arm[k].astype(np.float64).ravel() for k in keys])
    diff = float(np.abs(a - b).max())
    rel = diff / max(float(np.abs(a).max()), 1e-12)
    same = sum(int((x86[k].argmax(-1) == arm[k].argmax(-1)).sum()) for k in keys)
    rows = sum(x86[k].argmax(-1).size for k in keys)
    # int8: a rounding difference moves an output by one quantization step (~1/256 of the range); float: noise
    tol = 2e-2 if "int8" in name else 1e-4
    good = rel <= tol and same == rows and str(arm[name + ":runtime"]) == str(x86[name + ":runtime"])
    failed += not good
    print(f"{name:20} {str(arm[name + ':runtime']):12} {diff:14.3g} {rel:11.3g} {f'{same}/{rows}':>12}  "
          f"{'PASS' if good else 'FAIL'} (tol {tol:g} of the output range)")
print(f"aarch64 check: {'PASS' if not failed else 'FAIL'} ({len(names) - failed}/{len(names)} models)")
sys.exit(1 if failed else 0)
EOF
