#!/usr/bin/env bash
# The checks that need a GPU, as one script for a lent machine (target: under 5 minutes on one
# modern GPU; not run yet: written on a machine without one).
#
#   bash tools/gpu_check.sh [OUT_DIR]        (from the repository root; PYTHON=... picks the interpreter)
#
# 1. tests/test_ops_fused.py on CUDA tensors: the compiled Triton kernels (no interpreter) against
#    the banded op and the unfold reference, every gradient, float16/bfloat16 inputs, the whole arch.
# 2. The filtering op, forward+backward at 224x224, B=4, N=90, K=15: fused vs banded vs naive, time
#    and peak memory above the inputs.
# 3. A paper-scale train step (base 64, 5 levels, N=90, B=4, 224x224) of FCDFNArch and DeepFnFArch:
#    float32 banded, bf16 autocast banded, bf16 autocast fused.
# Everything printed is also written under OUT_DIR (default gpu_check_out/): log.txt and JSON files.
# 'auto' stays the banded op until step 2 shows the fused kernel faster (see docs/DESIGN.md).
set -euo pipefail
PY=${PYTHON:-python3}
OUT=${1:-gpu_check_out}
mkdir -p "$OUT"
exec > >(tee "$OUT/log.txt") 2>&1
unset TRITON_INTERPRET                                # the compiled kernels, not the interpreter
export CUDA_VISIBLE_DEVICES=${CUDA_VISIBLE_DEVICES:-0}  # tests/conftest.py hides GPUs unless this is set
START=$SECONDS
stamp() { echo "== [$((SECONDS - START)) s] $*"; }

"$PY" - <<'EOF'
import torch, triton
if not torch.cuda.is_available():
    raise SystemExit('gpu_check: no CUDA GPU visible (torch.cuda.is_available() is False)')
print('torch', torch.__version__, 'triton', triton.__version__, 'GPU', torch.cuda.get_device_name(),
      'TF32 matmul', torch.backends.cuda.matmul.allow_tf32)
EOF

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
