#!/usr/bin/env bash
# The one command a session with a lent H100/H200 runs (docs/gpu.md says how): install the carried wheels, record
# the machine, then run benchmarks under time limits, leaving every result in $OUT as soon as it is measured.
#
#   bash benchmarks/run_on_gpu.sh [issue20|issue17|all|throughput|end_to_end]
#
# issue20 (issue 20's call, about 9.5 minutes; docs/gpu.md "What the next GPU session should do"), in priority order,
# each part under its own limit and all of them within TOTAL_S seconds of the start (a part gets what is left, and
# is skipped below a useful minimum):
#   1. end_to_end.*  the guide's grid with every stage's time, then extraction alone for the pairs of EXTRACTION_SWEEP
#                    (--num_workers:--cache.batch_size) that fit before the part's end        E2E_LIMIT (300 s)
#   2. launch.*      gpu_launch_probe.py: the eager forward under decoding-like load, against a CUDA graph LAUNCH_LIMIT (60 s)
#   3. compile.*     FastEncoder under torch.compile for each of COMPILE_MODES, batch 32          COMPILE_LIMIT (130 s)
#   4. training.*    gpu_training.py: backbone_lora and pretraining steps, memory, largest batch  TRAINING_LIMIT (80 s)
#   5. checks.*      gpu_throughput.py staging (pinned copies = plain copies) and build (random model drawn on the
#                    device = drawn on the CPU?)                                                 CHECKS_LIMIT (30 s)
#   6. decode.*      gpu_decode_probe.py: NVDEC through PyAV's FFmpeg, checked against the CPU decoder   DECODE_LIMIT (40 s)
# PARTS (default all six, comma-separated) picks parts, e.g. PARTS=compile,training for a second, shorter call.
# issue17 (about 7.5 minutes): pretrain_at_scale.py, issue 17's two pretrainings with a GPU's clips, within
# PRETRAIN_LIMIT (450 s); it leaves pretrain_scale.md and one tarball per run (scratch.tar.gz, adaptation.tar.gz) for
# the probes on the CPU machine (docs/pretraining.md). PRETRAIN_ARGS are appended.
# all / throughput / end_to_end: issue 8's runs (throughput under THROUGHPUT_LIMIT, 240 s; end to end under
# E2E_LIMIT, 320 s, with the no-store figure); COMPILE (default "default") lists torch.compile modes for the throughput
# run; THROUGHPUT_ARGS and E2E_ARGS are appended to those two commands.
#
# Needs .whl/ (scripts/fetch_gpu_wheels.sh, run beforehand where a package registry is reachable), carried with the
# call; WHEELS names another folder, or is empty for a CPU smoke run in an environment that has everything.
# The device tool brings back at most 8 files from $OUT, so environment.txt and each part's JSON and log go into
# $OUT/raw.tar as soon as they are written; $OUT keeps raw.tar and one NAME.md per part (at most 7 files).
# E2E_WORKERS (14) is the grid's --num_workers. DEVICE (cuda), PY (python3) and SITE (/tmp/site, where the wheels go)
# exist for a smoke run of this script on a CPU, as do the *_ARGS overrides.
set -uo pipefail
cd "$(dirname "$0")/.."
START=$SECONDS

STAGE=${1:-all}
case "$STAGE" in issue20|issue17|all|throughput|end_to_end) ;;
  *) echo "usage: $0 [issue20|issue17|all|throughput|end_to_end]" >&2; exit 2 ;; esac
OUT=${OUT:-/tmp/vjepa-gpu-results}
TOTAL_S=${TOTAL_S:-565}
THROUGHPUT_LIMIT=${THROUGHPUT_LIMIT:-240}
E2E_LIMIT=${E2E_LIMIT:-$([[ $STAGE == issue20 ]] && echo 300 || echo 320)}
DECODE_LIMIT=${DECODE_LIMIT:-40}
LAUNCH_LIMIT=${LAUNCH_LIMIT:-60}
COMPILE_LIMIT=${COMPILE_LIMIT:-130}
TRAINING_LIMIT=${TRAINING_LIMIT:-80}
CHECKS_LIMIT=${CHECKS_LIMIT:-30}
PRETRAIN_LIMIT=${PRETRAIN_LIMIT:-450}
COMPILE=${COMPILE-default}
COMPILE_MODES=${COMPILE_MODES-default,max-autotune-no-cudagraphs}
EXTRACTION_SWEEP=${EXTRACTION_SWEEP-8:32,14:32,8:8}
E2E_WORKERS=${E2E_WORKERS:-14}
PY=${PY:-python3}
DEVICE=${DEVICE:-cuda}
SITE=${SITE:-/tmp/site}
THROUGHPUT_ARGS=${THROUGHPUT_ARGS:-}
E2E_ARGS=${E2E_ARGS:-}
DECODE_ARGS=${DECODE_ARGS:-}
LAUNCH_ARGS=${LAUNCH_ARGS:-}
COMPILE_ARGS=${COMPILE_ARGS:-}
TRAINING_ARGS=${TRAINING_ARGS:-}
CHECKS_ARGS=${CHECKS_ARGS:-}
PRETRAIN_ARGS=${PRETRAIN_ARGS:-}
KNOWN_PARTS=end_to_end,launch,compile,training,checks,decode
PARTS=${PARTS:-$KNOWN_PARTS}
for name in ${PARTS//,/ }; do  # a misspelt part would cost a device call that measures nothing
  [[ ",$KNOWN_PARTS," == *",$name,"* ]] || { echo "unknown part '$name' in PARTS; known: $KNOWN_PARTS" >&2; exit 2; }
done
mkdir -p "$OUT"
rm -f "$OUT/raw.tar"
export PYTHONUNBUFFERED=1
shopt -s nullglob
# archive FILE...: move these files of $OUT (those that exist) into $OUT/raw.tar
archive() {
  local kept=() file
  for file in "$@"; do [[ -f $OUT/$file ]] && kept+=("$file"); done
  (( ${#kept[@]} == 0 )) || tar -rf "$OUT/raw.tar" -C "$OUT" --remove-files "${kept[@]}"
}
# However the script ends, no JSON or log is left loose beside the tables (the device tool returns 8 files).
archive_loose() { local loose=("$OUT"/*.json "$OUT"/*.log); archive "${loose[@]##*/}"; }
trap archive_loose EXIT

WHEELS=${WHEELS-.whl}
if [[ -n $WHEELS ]]; then
  wheels=("$WHEELS"/*.whl)
  if (( ${#wheels[@]} == 0 )); then
    echo "no wheels in $WHEELS/: run scripts/fetch_gpu_wheels.sh where a registry is reachable, and carry .whl" >&2
    exit 2
  fi
  "$PY" -m pip install -q --no-index --no-deps --no-compile --no-cache-dir --upgrade --target "$SITE" "${wheels[@]}" \
    || { echo "installing the carried wheels failed" >&2; exit 3; }
fi
export PYTHONPATH="$PWD/src:$SITE${PYTHONPATH:+:$PYTHONPATH}"

{
  date -u +"%Y-%m-%dT%H:%M:%SZ"
  git rev-parse --short HEAD 2>/dev/null || echo "commit unknown"
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
archive environment.txt  # printed above; every table's header names the machine too
"$PY" -c "import av, jsonargparse, vjepa_tune.cli, vjepa_tune.compare" \
  || { echo "vjepa_tune does not import here; see the error above" >&2; exit 4; }

status=0
# part NAME LIMIT MINIMUM COMMAND...: run COMMAND under min(LIMIT, what TOTAL_S leaves), teeing NAME.log into $OUT;
# skipped when less than MINIMUM seconds are left. The limit is exported as PART_LIMIT for the command's own budget.
part() {
  local name=$1 limit=$2 minimum=$3; shift 3
  if [[ $STAGE == issue20 && ",$PARTS," != *",$name,"* ]]; then return; fi
  local left=$(( TOTAL_S - (SECONDS - START) - 5 ))
  (( limit > left )) && limit=$left
  if (( limit < minimum )); then
    echo "=== $name skipped: ${left} s left, it needs at least ${minimum} s" | tee "$OUT/$name.log"
    status=1
    archive "$name.log"
    return
  fi
  echo "=== $name (limit ${limit} s, $(( SECONDS - START )) s since the start)"
  PART_LIMIT=$limit timeout -k 10 "$limit" "$@" 2>&1 | tee "$OUT/$name.log"
  local rc=${PIPESTATUS[0]}
  (( rc == 0 )) || { echo "$name exited with $rc"; status=1; }
  archive "$name.json" "$name.log"
}
budget() { echo $(( PART_LIMIT - $1 )); }  # a part's own budget: its limit less what its last step may take
export -f budget

if [[ $STAGE == issue20 ]]; then
  part end_to_end "$E2E_LIMIT" 120 bash -c '"$0" benchmarks/gpu_end_to_end.py --device "$1" --num_workers "$2" \
    --no_store skip --extraction_sweep "$3" --deadline_s $(budget 10) --out "$4/end_to_end.json" \
    --markdown "$4/end_to_end.md" $5' "$PY" "$DEVICE" "$E2E_WORKERS" "$EXTRACTION_SWEEP" "$OUT" "$E2E_ARGS"
  part launch "$LAUNCH_LIMIT" 30 "$PY" benchmarks/gpu_launch_probe.py --device "$DEVICE" --busy "$E2E_WORKERS" \
    --out "$OUT/launch.json" --markdown "$OUT/launch.md" $LAUNCH_ARGS
  part compile "$COMPILE_LIMIT" 45 bash -c '"$0" benchmarks/gpu_throughput.py --device "$1" --only compile \
    --compile "$2" --compile_paths fast --batch_sizes 32 --budget_s $(budget 45) --out "$3/compile.json" \
    --markdown "$3/compile.md" $4' "$PY" "$DEVICE" "$COMPILE_MODES" "$OUT" "$COMPILE_ARGS"
  part training "$TRAINING_LIMIT" 30 bash -c '"$0" benchmarks/gpu_training.py --device "$1" --train_batch 8 \
    --max_step_s 8 --budget_s $(budget 10) --out "$2/training.json" --markdown "$2/training.md" $3' \
    "$PY" "$DEVICE" "$OUT" "$TRAINING_ARGS"
  part checks "$CHECKS_LIMIT" 10 "$PY" benchmarks/gpu_throughput.py --device "$DEVICE" --only staging,build \
    --batch_sizes 8 --out "$OUT/checks.json" --markdown "$OUT/checks.md" $CHECKS_ARGS
  part decode "$DECODE_LIMIT" 20 "$PY" benchmarks/gpu_decode_probe.py --out "$OUT/decode.json" \
    --markdown "$OUT/decode.md" $DECODE_ARGS
  echo "=== results ($(( SECONDS - START )) s; full figures in $OUT)"
  cat "$OUT"/end_to_end.md "$OUT"/launch.md "$OUT"/compile.md "$OUT"/training.md "$OUT"/checks.md \
    "$OUT"/decode.md 2>/dev/null
  exit $status
fi

if [[ $STAGE == issue17 ]]; then
  part pretrain_scale "$PRETRAIN_LIMIT" 120 bash -c '"$0" benchmarks/pretrain_at_scale.py --work /tmp/pretrain-scale \
    --out "$1" --num_workers "$2" --deadline_s $(budget 20) $3' "$PY" "$OUT" "$E2E_WORKERS" "$PRETRAIN_ARGS"
  echo "=== results ($(( SECONDS - START )) s; run folders in $OUT/*.tar.gz)"
  cat "$OUT"/pretrain_scale.md 2>/dev/null
  exit $status
fi

if [[ $STAGE == all || $STAGE == throughput ]]; then
  part throughput "$THROUGHPUT_LIMIT" 30 "$PY" benchmarks/gpu_throughput.py --device "$DEVICE" --compile "$COMPILE" \
    --budget_s $(( THROUGHPUT_LIMIT - 70 )) --out "$OUT/throughput.json" --markdown "$OUT/throughput.md" \
    $THROUGHPUT_ARGS
fi
if [[ $STAGE == all || $STAGE == end_to_end ]]; then
  part end_to_end "$E2E_LIMIT" 30 "$PY" benchmarks/gpu_end_to_end.py --device "$DEVICE" --num_workers "$E2E_WORKERS" \
    --out "$OUT/end_to_end.json" --markdown "$OUT/end_to_end.md" $E2E_ARGS
fi

echo "=== results (full figures in $OUT)"
cat "$OUT"/throughput.md "$OUT"/end_to_end.md 2>/dev/null
exit $status
