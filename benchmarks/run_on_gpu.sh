#!/usr/bin/env bash
# The one command a session with a lent H100/H200 runs (docs/gpu.md says how): install the carried wheels, record
# the machine, then run the throughput and end-to-end benchmarks, each under a time limit, leaving every result in
# $OUT (at most 8 files come back: environment.txt, throughput.{json,md,log}, end_to_end.{json,md,log}).
#
#   bash benchmarks/run_on_gpu.sh [all|throughput|end_to_end]
#
# Needs .whl/ (scripts/fetch_gpu_wheels.sh, run beforehand where a package registry is reachable), carried with the
# call. Limits in seconds, overridable: THROUGHPUT_LIMIT (240), E2E_LIMIT (320); together with the install they stay
# under the device's 600 s per command. COMPILE (default "default") lists torch.compile modes for the throughput run;
# set it empty to skip compilation (about a minute). E2E_WORKERS (14) is the grid's --num_workers. THROUGHPUT_ARGS
# and E2E_ARGS are appended to the two commands (e.g. THROUGHPUT_ARGS="--only extraction,compile" while iterating).
# DEVICE (cuda) and SITE (/tmp/site, where the wheels go) exist for a smoke run of this script on a CPU.
set -uo pipefail
cd "$(dirname "$0")/.."

STAGE=${1:-all}
case "$STAGE" in all|throughput|end_to_end) ;; *) echo "usage: $0 [all|throughput|end_to_end]" >&2; exit 2 ;; esac
OUT=${OUT:-/tmp/vjepa-gpu-results}
THROUGHPUT_LIMIT=${THROUGHPUT_LIMIT:-240}
E2E_LIMIT=${E2E_LIMIT:-320}
COMPILE=${COMPILE-default}
E2E_WORKERS=${E2E_WORKERS:-14}
PY=${PY:-python3}
DEVICE=${DEVICE:-cuda}
SITE=${SITE:-/tmp/site}
THROUGHPUT_ARGS=${THROUGHPUT_ARGS:-}
E2E_ARGS=${E2E_ARGS:-}
mkdir -p "$OUT"
export PYTHONUNBUFFERED=1

shopt -s nullglob
wheels=(.whl/*.whl)
if (( ${#wheels[@]} == 0 )); then
  echo "no wheels in .whl/: run scripts/fetch_gpu_wheels.sh where a registry is reachable, and carry .whl" >&2
  exit 2
fi
"$PY" -m pip install -q --no-index --no-deps --no-compile --no-cache-dir --upgrade --target "$SITE" "${wheels[@]}" \
  || { echo "installing the carried wheels failed" >&2; exit 3; }
export PYTHONPATH="$PWD/src:$SITE${PYTHONPATH:+:$PYTHONPATH}"

{
  date -u +"%Y-%m-%dT%H:%M:%SZ"
  nvidia-smi || echo "nvidia-smi failed"
  "$PY" - <<'PYEOF'
import importlib.metadata as md, platform, torch
print("python", platform.python_version())
for name in ("torch", "transformers", "peft", "accelerate", "av", "jsonargparse", "numpy", "triton"):
    try:
        print(name, md.version(name))
    except md.PackageNotFoundError:
        print(name, "missing")
print("cuda", torch.version.cuda, "cudnn", torch.backends.cudnn.version(),
      "device", torch.cuda.get_device_name() if torch.cuda.is_available() else "none")
PYEOF
} 2>&1 | tee "$OUT/environment.txt"
"$PY" -c "import av, jsonargparse, vjepa_tune.cli, vjepa_tune.compare" \
  || { echo "vjepa_tune does not import here; see the error above" >&2; exit 4; }

status=0
if [[ $STAGE == all || $STAGE == throughput ]]; then
  echo "=== throughput (limit ${THROUGHPUT_LIMIT} s)"
  timeout -k 10 "$THROUGHPUT_LIMIT" "$PY" benchmarks/gpu_throughput.py --device "$DEVICE" --compile "$COMPILE" \
    --budget_s $(( THROUGHPUT_LIMIT - 70 )) --out "$OUT/throughput.json" --markdown "$OUT/throughput.md" \
    $THROUGHPUT_ARGS 2>&1 | tee "$OUT/throughput.log"
  rc=${PIPESTATUS[0]}; (( rc == 0 )) || { echo "throughput exited with $rc"; status=1; }
fi
if [[ $STAGE == all || $STAGE == end_to_end ]]; then
  echo "=== end to end (limit ${E2E_LIMIT} s)"
  timeout -k 10 "$E2E_LIMIT" "$PY" benchmarks/gpu_end_to_end.py --device "$DEVICE" --num_workers "$E2E_WORKERS" \
    --out "$OUT/end_to_end.json" --markdown "$OUT/end_to_end.md" $E2E_ARGS 2>&1 | tee "$OUT/end_to_end.log"
  rc=${PIPESTATUS[0]}; (( rc == 0 )) || { echo "end to end exited with $rc"; status=1; }
fi

echo "=== results (full figures in $OUT)"
cat "$OUT"/throughput.md "$OUT"/end_to_end.md 2>/dev/null
exit $status
