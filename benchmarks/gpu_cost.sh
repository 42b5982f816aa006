#!/usr/bin/env bash
# The cost benchmark on a lent GPU, as one short prepared run: RT-DETR-x -> YOLOv8s at 640 px, batches of 16, AMP,
# per optimizer step (baseline, online, offline, every-4) and the labeling throughput against Ultralytics' predict.
# Rows join benchmarks/results/kd_cost.csv with the card's name (about 3 minutes on an H100).
#   bash benchmarks/gpu_cost.sh
set -euo pipefail
python=${PYTHON:-python}
$python benchmarks/kd_cost.py --device cuda --batch 16 --amp --cases x640 demo160 --reps 10 --label-images 256 "$@"
