#!/usr/bin/env bash
# The checks that need a GPU, as one script for a lent machine (target: under 5 minutes on one
# modern GPU; not run yet: written on a machine without one).
#
#   bash tools/gpu_check.sh [OUT_DIR]        (from anywhere; PYTHON=... picks the interpreter)
#
# 1. tests/test_ops_fused.py on CUDA tensors: the compiled Triton kernels (no interpreter) against
#    the banded op and the unfold reference, every gradient, float16/bfloat16 inputs, the whole arch.
# 2. The filtering op, forward+backward at 224x224, B=4, N=90, K=15: fused vs banded vs naive, time
#    and peak memory above the inputs.
# 3. A paper-scale train step (base 64, 5 levels, N=90, B=4, 224x224) of FCDFNArch and DeepFnFArch:
#    float32 banded, bf16 autocast banded, bf16 autocast fused.
# Before them: the wheels of .whl/ (if any) installed into /tmp/site, tools/gpu_preflight.py (every
# module the steps import) and tools/kernel_report.py (the kernels' registers and spills as compiled
# for this GPU, kernel_report.md / .json).
# The lent machine reaches no package registry and lacks BasicSR and a few others: run
# tools/gpu_wheels.sh here first (it fills the git-ignored .whl/, about 2 MiB), and carry .whl along.
# The repository is not pip-installed there: its root goes on PYTHONPATH (GPU_SITE=... moves /tmp/site).
# Everything printed is also written under OUT_DIR (default gpu_check_out/ of the working directory):
# log.txt and JSON files.
# 'auto' stays the banded op until step 2 shows the fused kernel faster (see docs/DESIGN.md).
set -euo pipefail
PY=${PYTHON:-python3}
OUT=${1:-gpu_check_out}
mkdir -p "$OUT"
OUT=$(cd "$OUT" && pwd)                               # then run from the repository root
cd "$(dirname "${BASH_SOURCE[0]}")/.."
exec > >(tee "$OUT/log.txt") 2>&1
unset TRITON_INTERPRET                                # the compiled kernels, not the interpreter
export CUDA_VISIBLE_DEVICES=${CUDA_VISIBLE_DEVICES:-0}  # tests/conftest.py hides GPUs unless this is set
START=$SECONDS
stamp() { echo "== [$((SECONDS - START)) s] $*"; }

# wheels carried for what the image lacks (tools/gpu_wheels.sh), then the repository itself, on the path
SITE=${GPU_SITE:-/tmp/site}
if compgen -G '.whl/*.whl' >/dev/null; then
    stamp "wheels: installing $(ls .whl/*.whl | wc -l) from .whl/ into $SITE"
    "$PY" -m pip install -q --no-index --no-deps --no-compile --no-cache-dir --upgrade --target "$SITE" .whl/*.whl
    export PYTHONPATH="$SITE${PYTHONPATH:+:$PYTHONPATH}"
fi
export PYTHONPATH="$PWD${PYTHONPATH:+:$PYTHONPATH}"

# preflight: every module the steps import, all reported at once (missing ones: tools/gpu_wheels.sh)
"$PY" tools/gpu_preflight.py

stamp "0/3 compile report of the fused kernels for this GPU (registers, spills; not fatal)"
CC=$("$PY" -c 'import torch; major, minor = torch.cuda.get_device_capability(); print(major * 10 + minor)')
"$PY" tools/kernel_report.py --arch "$CC" --dtypes float32 bfloat16 --json "$OUT/kernel_report.json" \
    2>/dev/null | tee "$OUT/kernel_report.md" || echo 'gpu_check: kernel_report.py failed (continuing)'

stamp "1/3 fused kernel tests on CUDA"
"$PY" -m pytest -q -p no:cacheprovider -rs tests/test_ops_fused.py -k dev_cuda | tee "$OUT/tests.txt"
if grep -q skipped "$OUT/tests.txt"; then echo 'gpu_check: CUDA cases were skipped'; exit 1; fi

stamp "2/3 op: fused vs banded vs naive, 224x224 B=4 N=90 K=15, forward+backward"
"$PY" tools/benchmark.py op --device cuda --impls fused banded naive --size 224 --batch 4 --num-basis 90 \
    --kernel 15 --repeat 10 --rounds 2

stamp "3/3 paper-scale train step, FCDFN vs deepFnF"
for run in "none banded" "bf16 banded" "bf16 fused"; do
    set -- $run
    stamp "   amp $1, filter_impl $2"
    "$PY" tools/benchmark.py model --device cuda --base-channels 64 --depth 5 --num-basis 90 --batch 4 --size 224 \
        --repeat 5 --megapixels --amp "$1" --filter-impl "$2" --json "$OUT/model_amp-$1_$2.json"
done
stamp "done"
