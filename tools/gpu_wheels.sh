#!/usr/bin/env bash
# Fill .whl/ (git-ignored) with the wheels tools/gpu_check.sh needs on a lent GPU machine whose image lacks
# them. That machine reaches no package registry; gpu_check.sh installs .whl/*.whl there (no index, no
# dependencies) into /tmp/site when .whl/ holds any. Run this here, where pip reaches a registry:
#
#   bash tools/gpu_wheels.sh        (from anywhere; PYTHON=... picks the pip that downloads and builds BasicSR)
#
# The image: CPython 3.12 on x86-64 Linux with torch, torchvision, triton, numpy, opencv-python-headless,
# scipy, scikit-image, matplotlib, pyyaml, pillow, tqdm, requests, pytest, rich, regex, packaging,
# setuptools, tensorboard... It lacks, for what gpu_check.sh imports:
#   basicsr 1.4.2  fcdfn_plugin/compat.py imports it; PyPI has only its sdist, built here (py3-none-any)
#   lmdb           basicsr.utils imports it (a binary wheel: the cp312 manylinux build)
#   lpips          fcdfn_plugin/metrics/lpips_metric.py
#   mmengine       tools/flops.py; mmengine imports addict, yapf and termcolor, and yapf imports platformdirs
# BasicSR also declares future, tb-nightly and opencv-python: `import basicsr` imports none of them
# (tensorboard and cv2 are in the image anyway), so they are not carried.
#
# Versions: requirements.txt's pins, and the project's venv for the packages it does not name. Idempotent:
# a wheel already in .whl/ is kept, any other file there (another version, a package no longer listed)
# is removed, since two versions of one package stop the install there.
set -euo pipefail
ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
cd "$ROOT"
if [[ -n ${PYTHON:-} ]]; then PY=$PYTHON; elif [[ -x .venv/bin/python ]]; then PY=.venv/bin/python; else PY=python3; fi
DIR=.whl
#: the lent machine's interpreter and platform (pip matches the manylinux_2_N tags exactly)
TARGET=(--only-binary=:all: --python-version 3.12 --implementation cp
        --platform manylinux_2_28_x86_64 --platform manylinux_2_27_x86_64 --platform manylinux_2_17_x86_64
        --platform manylinux2014_x86_64 --platform manylinux1_x86_64)
#: pinned in requirements.txt
FROM_REQUIREMENTS=(basicsr lmdb lpips mmengine)
#: imported by those, not named in requirements.txt (the versions of the project's venv)
EXTRA=(addict==2.4.0 yapf==0.43.0 platformdirs==4.14.9 termcolor==3.3.0)

pin() {  # NAME -> NAME==VERSION from requirements.txt
    local line
    line=$(grep -iE "^$1==[^[:space:]#]+" requirements.txt | head -1 | sed 's/[[:space:]#].*//') || true
    [[ -n $line ]] || { echo "gpu_wheels: $1 is not pinned (==) in requirements.txt" >&2; exit 1; }
    echo "$line"
}

# NAME==VERSION -> the start of its wheel's file name (wheel names spell '-' and '.' in names as '_')
wheel_prefix() { local name=${1%%==*}; name=${name//[-.]/_}; echo "${name,,}-${1#*==}-"; }

SPECS=()
for name in "${FROM_REQUIREMENTS[@]}"; do SPECS+=("$(pin "$name")"); done
SPECS+=("${EXTRA[@]}")
mkdir -p "$DIR"

# Remove whatever is not one of SPECS' wheels (another version, a dropped package, a partial download).
for file in "$DIR"/* "$DIR"/.[!.]*; do
    [[ -e $file ]] || continue
    base=${file##*/}; keep=0
    for spec in "${SPECS[@]}"; do
        prefix=$(wheel_prefix "$spec")
        [[ ${base,,} == "$prefix"*.whl ]] && keep=1
    done
    if ((keep == 0)); then printf '%-10s %s\n' removed "$base (not in the list)"; rm -rf -- "$file"; fi
done

for spec in "${SPECS[@]}"; do
    prefix=$(wheel_prefix "$spec")
    present=$(find "$DIR" -maxdepth 1 -iname "$prefix*.whl" -printf '%f\n' | head -1)
    if [[ -n $present ]]; then printf '%-10s %s\n' kept "$present"; continue; fi
    tmp=$(mktemp -d)
    if "$PY" -m pip download -q --no-deps "${TARGET[@]}" -d "$tmp" "$spec" 2>"$tmp/.err"; then
        how=downloaded
    elif [[ ${spec%%==*} == basicsr ]]; then
        # No wheel on the index: build one from the sdist. Pure Python as long as BASICSR_EXT is unset
        # (it would compile CUDA ops); no build isolation, since its setup_requires names torch.
        env -u BASICSR_EXT "$PY" -m pip wheel -q --no-deps --no-build-isolation --no-binary basicsr \
            --no-cache-dir -w "$tmp" "$spec"
        how=built
    else
        cat "$tmp/.err" >&2; rm -rf "$tmp"
        echo "gpu_wheels: no wheel of $spec for CPython 3.12 on manylinux x86-64" >&2; exit 1
    fi
    wheel=$(find "$tmp" -maxdepth 1 -iname "$prefix*.whl" -printf '%f\n' | head -1)
    [[ -n $wheel ]] || { echo "gpu_wheels: pip made no $prefix*.whl" >&2; rm -rf "$tmp"; exit 1; }
    if [[ $how == built && $wheel != *-py3-none-any.whl ]]; then
        echo "gpu_wheels: $wheel is not pure Python (was BASICSR_EXT set?)" >&2; rm -rf "$tmp"; exit 1
    fi
    mv "$tmp/$wheel" "$DIR/"; rm -rf "$tmp"
    printf '%-10s %s\n' "$how" "$wheel"
done

bytes=$(find "$DIR" -maxdepth 1 -name '*.whl' -printf '%s\n' | awk '{s += $1} END {print s + 0}')
echo "gpu_wheels: ${#SPECS[@]} wheels in $DIR/, $(awk -v b="$bytes" 'BEGIN {printf "%.2f MiB", b / 1048576}') in all"
