#!/usr/bin/env bash
# The GPU figures of the README in one run: the throughput benchmark, the tutorial's full schedule
# (50 epochs, batch 16) and a faster schedule, on the real catalog, then test.py on both.
#   bash benchmarks/gpu_check.sh path/to/fashion-product-images-small.tar.gz [output-folder]
# Each stage has a time limit so that a slow stage cannot eat the others' time.
set -uo pipefail
repo=$(cd "$(dirname "$0")/.." && pwd)
archive=$1
out=$(mkdir -p "${2:-gpu-results}" && cd "${2:-gpu-results}" && pwd)
work=$(mktemp -d /tmp/fashion-gpu.XXXXXX)
export PYTHONUNBUFFERED=1
log() { echo "=== $(date +%T) $*" | tee -a "$out/summary.txt"; }
quiet() { grep --line-buffered -v 'batch/s' ; }  # progress bars off the log

log "machine"
nvidia-smi --query-gpu=name,memory.total,driver_version --format=csv,noheader | tee -a "$out/summary.txt"
python3 -c 'import torch, torchvision, PIL; print("torch", torch.__version__, "torchvision", torchvision.__version__, "pillow", PIL.__version__)' | tee -a "$out/summary.txt"
nproc | sed 's/^/cpu cores: /' | tee -a "$out/summary.txt"

log "unpack and split"
tar -xzf "$archive" -C "$work"
export FASHION_DATA=$work/fashion-product-images
cd "$work"
python3 "$repo/split_data.py" --input fashion-product-images --output . 2>&1 | quiet | tee -a "$out/summary.txt"
common=(--attributes_file fashion-product-images/styles.csv)

log "preflight: 1 epoch on the CUDA-graph path"
graphs=auto
head -2001 train.csv > small.csv
if ! timeout 90 python3 "$repo/train.py" "${common[@]}" --train-csv small.csv --epochs 1 --run-name preflight 2>&1 | quiet | tail -3; then
  log "CUDA graphs failed; the rest runs with --cuda-graphs off"
  graphs=off
fi

log "benchmark"
timeout 120 python3 "$repo/benchmarks/bench.py" --device cuda --images 32000 --seconds 4 2>&1 | quiet | tee "$out/bench.txt"

log "the tutorial's schedule: 50 epochs, batch 16, Adam 1e-3"
start=$(date +%s)
timeout 270 python3 "$repo/train.py" "${common[@]}" --cuda-graphs $graphs --run-name faithful 2>&1 | quiet | tee "$out/faithful.txt"
log "faithful run: $(( $(date +%s) - start )) s wall-clock, start-up and validation included"
cp checkpoints/faithful/metrics.csv "$out/faithful-metrics.csv" 2>/dev/null

log "a faster schedule: batch 256, lr 4e-3, 2 warm-up epochs, cosine, 30 epochs"
start=$(date +%s)
timeout 100 python3 "$repo/train.py" "${common[@]}" --cuda-graphs $graphs --batch-size 256 --lr 4e-3 \
  --warmup-epochs 2 --schedule cosine --epochs 30 --run-name fast 2>&1 | quiet | tee "$out/fast.txt"
log "fast run: $(( $(date +%s) - start )) s wall-clock"
cp checkpoints/fast/metrics.csv "$out/fast-metrics.csv" 2>/dev/null

for run in faithful fast; do
  log "test.py on $run"
  timeout 45 python3 "$repo/test.py" --checkpoint checkpoints/$run/last.pth --output eval-$run 2>&1 | tee -a "$out/summary.txt"
  cp eval-$run/metrics.json "$out/eval-$run.json" 2>/dev/null
done
log "done"
