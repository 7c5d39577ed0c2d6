#!/usr/bin/env bash
# Remake the bundled `tiny` checkpoint (src/vjepa_tune/assets/tiny) and its curves (docs/tiny_model/cycle-N):
# four cycles of make_tiny_checkpoint.py, each a warm-up + cosine schedule of 800 steps of 32 fresh easy clips,
# each continuing from the last one's saved (bf16) weights; cycles 1-3 render the clips of seed 0, cycle 4 those
# of seed 1. About 45 minutes on 2 CPU cores. docs/tiny_model.md says why it is made this way.
# POSE_WEIGHT=8 adds the per-token pose target to every cycle: the candidate of docs/tiny_model.md ("Tried since").
set -euo pipefail
cd "$(dirname "$0")/.."
cycle() { "${PYTHON:-.venv/bin/python}" scripts/make_tiny_checkpoint.py --pose_weight "${POSE_WEIGHT:-0}" "$@"; }
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
docs=docs/tiny_model

cycle --seed 0 --out "$work/cycle-1" --curve_dir "$docs/cycle-1"
cycle --seed 0 --init "$work/cycle-1" --warmup_steps 50 \
    --out "$work/cycle-2" --curve_dir "$docs/cycle-2"
cycle --seed 0 --init "$work/cycle-2" --warmup_steps 50 \
    --out "$work/cycle-3" --curve_dir "$docs/cycle-3"
cycle --seed 1 --init "$work/cycle-3" --warmup_steps 50 \
    --out src/vjepa_tune/assets/tiny --curve_dir "$docs/cycle-4"
