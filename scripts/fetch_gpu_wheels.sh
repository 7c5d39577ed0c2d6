#!/usr/bin/env bash
# Fetch the wheels the lent GPU machines lack into .whl/, for Python 3.12 on x86-64 Linux, each pinned to the
# version installed in this checkout's virtual environment. Run it here (it needs a package registry); the device
# call then carries `.whl` and benchmarks/run_on_gpu.sh installs them there (docs/gpu.md).
#
#   scripts/fetch_gpu_wheels.sh [PYTHON]        PYTHON: the interpreter whose versions to pin (default .venv/bin/python)
#
# Why these: the machines' image has torch, transformers, peft, accelerate, tensorboard, matplotlib, safetensors,
# tqdm, pyyaml, pillow and typing-extensions (.library/device/KINDS.md), but not PyAV (decoding) nor jsonargparse
# (the command line, imported by `compare`) with the two packages its dataclass flags need.
set -euo pipefail
cd "$(dirname "$0")/.."

PYTHON=${1:-${PYTHON:-.venv/bin/python}}
PACKAGES=(av jsonargparse docstring_parser typeshed_client)
LIMIT_MIB=64  # what one device call may carry: the working tree and the carried paths together

pins=()
for name in "${PACKAGES[@]}"; do
  if ! version=$("$PYTHON" -c 'import importlib.metadata as m, sys; print(m.version(sys.argv[1]))' "$name" 2>/dev/null); then
    echo "error: $name is not installed for $PYTHON, so there is no version to pin; install the project first" >&2
    exit 1
  fi
  pins+=("$name==$version")
done

rm -rf .whl
mkdir -p .whl
"$PYTHON" -m pip download --quiet --no-deps --only-binary=:all: --python-version 3.12 --implementation cp \
  --platform manylinux_2_28_x86_64 --platform manylinux_2_27_x86_64 --platform manylinux_2_17_x86_64 \
  --platform manylinux2014_x86_64 --platform manylinux1_x86_64 -d .whl "${pins[@]}"

echo "wheels for the GPU machine (${pins[*]}):"
ls -l .whl
echo "their own requirements (each must be one of these wheels or already on the machine):"
for wheel in .whl/*.whl; do
  unzip -p "$wheel" '*.dist-info/METADATA' | grep '^Requires-Dist' | grep -v 'extra ==' | sed "s|^|  $(basename "$wheel"): |" || true
done

if ! git check-ignore -q .whl/x.whl 2>/dev/null; then
  echo "warning: .whl/ is not ignored by git here; add /.whl/ to .gitignore or .git/info/exclude" >&2
fi
wheels=$(du -sk .whl | cut -f1)
tree=$(git ls-files -z --cached --others --exclude-standard | xargs -0 -r du -ck 2>/dev/null | tail -1 | cut -f1)
total_mib=$(( (wheels + tree + 1023) / 1024 ))
echo "carried to the device: .whl $(( (wheels + 1023) / 1024 )) MiB + working tree $(( (tree + 1023) / 1024 )) MiB = ${total_mib} MiB (limit ${LIMIT_MIB} MiB)"
if (( total_mib > LIMIT_MIB )); then
  echo "error: over the ${LIMIT_MIB} MiB a device call carries" >&2
  exit 1
fi
