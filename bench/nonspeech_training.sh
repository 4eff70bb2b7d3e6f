#!/usr/bin/env bash
# Does the softmax stage's nonspeech_weight keep non-speech away from
# speakers?  One arm of the measurement in the README ("Troubleshooting"):
# fine-tunes the benchmark's CPU-budget `base` model (bench/accuracy.py,
# no augmentation) from its epoch-12 softmax checkpoint for 2 more epochs,
# runs 1 triplet epoch (train_triplet.py), then prints, for the
# softmax-only export (pretrained_init) and the triplet one (pretrained),
# the test EER (verify.py, the 30,000 benchmark trials) and the
# non-speech acceptance (bench/nonspeech.py).
#
# Usage (the two arms, each with one thread; they may run side by side):
#   bench/nonspeech_training.sh A                          # without
#   bench/nonspeech_training.sh B --nonspeech_weight 1.0   # with
# Environment: OUT_ROOT (default /tmp/nonspeech_training), PREP (default
# bench_data/tts8k), BASE (default bench_data/accuracy/base), PY.
set -euo pipefail
cd "$(dirname "$0")/.."
ARM=$1; shift
PY=${PY:-.venv/bin/python}
PREP=${PREP:-bench_data/tts8k}
BASE=${BASE:-bench_data/accuracy/base}
OUT=${OUT_ROOT:-/tmp/nonspeech_training}/ft$ARM
mkdir -p "$OUT/softmax"
[ -d "$OUT/softmax/save" ] || cp -r "$BASE/softmax/save" "$OUT/softmax/save"
MODEL=(--channels "[16, 32, 64, 128]" --blocks_per_stage 1 --emb_dim 128
       --n_mels 40)
COMMON=(--num_workers 0 --device cpu --noprogressbar --augment False)
export OMP_NUM_THREADS=1
start=$(date +%s)
"$PY" train_softmax.py hparams/softmax.yaml --data_folder "$PREP" \
  --prep_folder "$PREP" --skip_prep True --output_folder "$OUT/softmax" \
  "${MODEL[@]}" --number_of_epochs 14 --batch_size 32 --sentence_len 2.0 \
  --lr 0.003 --lr_final 0.0003 "${COMMON[@]}" "$@"
echo "softmax_seconds $(( $(date +%s) - start ))"
"$PY" train_triplet.py hparams/triplet.yaml --prep_folder "$PREP" \
  --softmax_ckpt_folder "$OUT/softmax/save" --output_folder "$OUT/triplet" \
  "${MODEL[@]}" --number_of_epochs 1 --speakers_per_batch 16 \
  --n_per_speaker 4 --sentence_len 2.0 --lr 0.001 --lr_final 0.0001 \
  "${COMMON[@]}"
for export in pretrained_init pretrained; do
  echo "== $export"
  "$PY" verify.py --model "$OUT/triplet/$export" --csv "$PREP/test.csv" \
    --out "$OUT/verify_$export" --device cpu
  "$PY" bench/nonspeech.py --model "$OUT/triplet/$export" \
    --csv "$PREP/test.csv"
done
echo "total_seconds $(( $(date +%s) - start ))"
