#!/usr/bin/env bash
# One prepared GPU run (issue 16): the cuda-parametrized tests on both kernel paths, then the
# GPU benchmark, with every log and result written to one folder that can be copied back.
#
#   bench/gpu_check.sh [RESULTS_DIR]               # on a machine with an NVIDIA GPU and CuPy
#   bench/gpu_check.sh --gpu-device cpu [DIR]      # dry run on a CPU machine: same steps, cuda cases skip
#
# Needs no network: uses the CuPy, NumPy and PyTorch already installed where it runs (the lent GPU
# machines have cupy-cuda13x and torch; `pip install -e ".[gpu,test]" -r requirements-test.txt`
# where the registries can be reached) and imports this checkout through PYTHONPATH.
# Budget: about 8 minutes in all (tests 2 x <= 150 s, benchmark <= 180 s).
set -uo pipefail

GPU_DEVICE=cuda
if [ "${1:-}" = "--gpu-device" ]; then
    GPU_DEVICE="$2"
    shift 2
fi
RESULTS="${1:-bench/results}"
mkdir -p "$RESULTS"
ROOT="$(cd "$(dirname "$0")/.." && pwd)"
cd "$ROOT" || exit 1
PYTHON="${PYTHON:-python3}"
export PYTHONPATH="$ROOT${PYTHONPATH:+:$PYTHONPATH}" PYTHONUNBUFFERED=1 MPLBACKEND=Agg

{
    date -u
    nvidia-smi --query-gpu=name,driver_version,memory.total --format=csv 2>&1 || echo "no nvidia-smi"
    "$PYTHON" - <<'PY'
import importlib
for name in ("numpy", "scipy", "cupy", "torch", "h5py", "matplotlib", "pytest", "xdist"):
    try:
        module = importlib.import_module(name)
        print(f"{name} {getattr(module, '__version__', '?')}")
    except ImportError as exc:
        print(f"{name} missing ({exc})")
PY
} 2>&1 | tee "$RESULTS/gpu-environment.txt"

status=0
# -k cuda: the device-parametrized tests' cuda cases (conftest.py skips them cleanly without a GPU).
# The modules that opt into the kernel_path fixture run on both paths in the first pass already;
# the second pass (fast kernels off for the whole process) runs the other modules.
mapfile -t other_modules < <(grep -L 'usefixtures("kernel_path")' tests/test_*.py)
for path in fast reference; do
    targets=(tests)
    if [ "$path" = reference ]; then targets=("${other_modules[@]}"); fi
    echo "== cuda tests, MINIGRAD_KERNELS=$path" | tee "$RESULTS/gpu-tests-$path.log"
    MINIGRAD_TEST_DEVICE=cuda MINIGRAD_KERNELS="$path" timeout 150 \
        "$PYTHON" -m pytest -o addopts="" -p no:cacheprovider -q -n 8 -rfEs -k cuda "${targets[@]}" \
        2>&1 | tee -a "$RESULTS/gpu-tests-$path.log"
    rc=${PIPESTATUS[0]}
    # 5: nothing collected, as on a CPU dry run where every cuda case is deselected or skipped
    if [ "$rc" -ne 0 ] && [ "$rc" -ne 5 ]; then status=1; fi
done

echo "== bench/gpu.py --gpu-device $GPU_DEVICE"
timeout 180 "$PYTHON" bench/gpu.py --gpu-device "$GPU_DEVICE" --markdown "$RESULTS/gpu.md" \
    2>&1 | tee "$RESULTS/gpu-bench.log"
[ "${PIPESTATUS[0]}" -eq 0 ] || status=1
echo "gpu_check: exit $status, results in $RESULTS"
exit $status
