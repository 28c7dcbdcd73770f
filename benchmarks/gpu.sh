#!/usr/bin/env bash
# Paper Table 6 on one CUDA GPU: train and inference images/s and peak memory of dra, adapter and zero-shot
# CLIP, ViT-B/16, bf16 autocast, batch 16 and 128, plus torch.compile rows where compiling works.
#
#   bash benchmarks/gpu.sh                      # writes benchmarks/results/gpu/efficiency_ViT-B-16_cuda_b{16,128}.{json,md}
#   MMA_SRC=/path/to/Multi-Modal-Adapter bash benchmarks/gpu.sh     # adds MMA's own model as a row
#   STEPS=20 WARMUP=5 OUT=/tmp/gpu bash benchmarks/gpu.sh
#
# About 3-6 minutes on one recent GPU (most of it torch.compile's warm-up). Needs `pip install -e .` or
# PYTHONPATH=src. The same command is what a lent GPU runs in one call.
set -euo pipefail
cd "$(dirname "$0")/.."
export PYTHONPATH="${PYTHONPATH:+$PYTHONPATH:}src"
OUT="${OUT:-benchmarks/results/gpu}"
STEPS="${STEPS:-10}"
WARMUP="${WARMUP:-3}"
COMPILE="${COMPILE:---compile}"          # COMPILE= (empty) skips the torch.compile rows
MMA=()
if [ -n "${MMA_SRC:-}" ]; then MMA=(--mma "$MMA_SRC"); fi
python -c "import torch, sys; sys.exit(0 if torch.cuda.is_available() else 'error: no CUDA GPU visible to torch')"
nvidia-smi --query-gpu=name,memory.total,driver_version --format=csv,noheader || true
for BATCH in 16 128; do
  python benchmarks/efficiency.py --device cuda --precision bf16 --batch-size "$BATCH" --num-classes 10 100 \
    --steps "$STEPS" --warmup "$WARMUP" $COMPILE "${MMA[@]}" --out "$OUT"
done
echo "results: $OUT"
