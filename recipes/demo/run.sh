#!/usr/bin/env bash
# The whole Deep Speaker pipeline on the built-in synthetic demo corpus:
#   generate -> prepare -> softmax pre-training -> triplet training -> verify
# Run it with `make demo` (which installs the package first). Every stage
# is idempotent or resumable: a second run skips what is already done.
#
# Environment: PY (python to use, default python3), DEMO_DIR (default
# demo_run).
set -euo pipefail
PY=${PY:-python3}
DEMO_DIR=${DEMO_DIR:-demo_run}
CORPUS=$DEMO_DIR/corpus
PREP=$DEMO_DIR/vivos8k
RESULTS=$DEMO_DIR/results

step() { printf '\n=== %s ===\n' "$*"; }

step "1/2 generating the synthetic demo corpus (VIVOS layout, 16 kHz)"
"$PY" -m deep_speaker_sb.data.synthetic --out "$CORPUS"

step "2/2 preparing 8 kHz silence-trimmed manifests"
"$PY" data_prep.py --data_folder "$CORPUS" --save_folder "$PREP" \
    --num_workers 2
