#!/usr/bin/env bash
# The GPU figures of the README, stage by stage, on the real catalog:
#   bash benchmarks/gpu_check.sh ARCHIVE OUT [STAGE ...]
# ARCHIVE is fashion-product-images-small.tar.gz; results and logs go to the folder OUT.
# Stages, in the order given (default: faithful fast test, the issue's targets, which fit one
# call of the GPU machine: 7 min 36 s on an H200 on 2026-11-28, about 10 at their limits):
#   variants  the training step at batch 16 in every configuration (step_variants.py); the
#             fastest one's flags are used by 'faithful'
#   warm      'faithful''s flags on 2 epochs of 8,000 images at batch 16: with --compile, the first
#             compile, so that a 'faithful' after it times a machine's second run (the kernels cached)
#   faithful  the tutorial's schedule: 50 epochs at batch 16, Adam 1e-3, wall-clock timed, with
#             the flags in $FAITHFUL_FLAGS, or else those 'variants' found fastest
#   fast      the faster recipe: batch 256, lr 4e-3, 2 warm-up epochs, cosine, 45 epochs, then
#             the flags in $FAST_FLAGS (say '--epochs 30 --cudnn-benchmark on'), which 'seeds' takes too
#   test      test.py on the checkpoints of faithful and fast, those of the two that ran on this machine,
#             each timed, and on faithful's again in channels_last (NCHW on CUDA is its default)
#   seeds     the faster recipe again with --seed 43 and 44, each scored by test.py (3 min 9 s on an H200;
#             one run of a recipe moves by about a point, and the recipe is to stay within one of
#             the tutorial's schedule on every head; their figures go to summary.txt)
#   bench     benchmarks/bench.py on all 32,000 training images
#   profile   where the batch-16 step's GPU time goes (profile_step.py): kernels a step, their time
#             against the replayed step's, by operation and by kernel; NCHW (train.py's choice
#             there), channels_last, compiled
#   startup-16, startup-256
#             where a run's first minute goes: 3 short epochs (validation after the 2nd and 3rd) on
#             8,000 images at that batch size, with channels_last and cuDNN's search on and off
#             (4 runs, 2 to 6 minutes; their logs stay in the work folder, their figures go to
#             summary.txt, as the GPU machine sends back only 8 files)
# Each stage has its own time limit (variants 200 s, warm 200, faithful 360, fast 110, test 40 a
# run, bench 150, profile 90 a run and 150 compiled, startup 90 a run), so a slow one cannot eat
# the others' time; a faithful run cut off by its limit still shows its
# seconds per epoch. The catalog, the split, the runs and torch.compile's cache stay in
# $FASHION_GPU_WORK (default: /tmp/fashion-gpu; a folder of other files is refused), so a second
# call with the remaining stages, on the same machine, starts where the first stopped: for example
# 'variants faithful', then 'fast test bench'.
# Every run's end goes into summary.txt: finished, cut off at its limit, or failed with its last
# line. Where PyTorch sees no GPU the script stops at once, unless FASHION_GPU_ALLOW_CPU=1 (a dry
# run of the stages on a CPU); where python3 has no PyTorch, or the archive cannot be unpacked and
# split, too. The exit status is 0 where every run finished (or, for a training run, was cut off at
# its limit, its epochs timed still), 1 where one failed or another command was cut off, 130 on a
# Ctrl-C, which stops the command running and the stages after it, 143 on a SIGTERM to the script,
# which stops it once the command has ended.
set -uo pipefail
known="variants warm faithful fast test seeds bench profile startup-16 startup-256"
usage="usage: bash benchmarks/gpu_check.sh ARCHIVE OUT [STAGE ...], stages: $known"
case ${1:-} in -h|--help) echo "$usage"; exit 0 ;; esac
[ $# -ge 2 ] || { echo "$usage" >&2; exit 2; }
if [ -d "$1" ]; then
  echo "$1: a folder; ARCHIVE is the catalog as a .tar.gz, fashion-product-images-small.tar.gz" >&2; exit 2
fi
[ -f "$1" ] || { echo "$1: no such file; ARCHIVE is fashion-product-images-small.tar.gz" >&2; exit 2; }
read -r -a stages <<< "${*:3}"  # 'fast test' as one argument too
[ ${#stages[@]} -gt 0 ] || stages=(faithful fast test)
# Every stage is checked before the first starts: a misspelt last one would otherwise be found
# only minutes of GPU time later.
for stage in "${stages[@]}"; do
  [[ " $known " == *" $stage "* ]] || { echo "unknown stage: $stage; $usage" >&2; exit 2; }
done
repo=$(cd "$(dirname "$0")/.." && pwd)
archive=$(realpath "$1")
out=$(mkdir -p "$2" && cd "$2" && pwd) || { echo "$2: cannot make the folder OUT there" >&2; exit 2; }
work=$(mkdir -p "${FASHION_GPU_WORK:-/tmp/fashion-gpu}" && cd "${FASHION_GPU_WORK:-/tmp/fashion-gpu}" && pwd) || exit 1
# The stages remove their own earlier runs there (checkpoints/faithful, eval-faithful, ...): a folder
# of other files (FASHION_GPU_WORK=. in a project, its own checkpoints/faithful) is refused, not used.
if [ ! -e "$work/.gpu_check_work" ]; then
  if [ -n "$(ls -A "$work")" ]; then
    echo "$work: FASHION_GPU_WORK names a folder of other files, where the stages would remove runs of" \
      "theirs by name; give a new or empty folder" >&2
    exit 2
  fi
  touch "$work/.gpu_check_work" || exit 1
fi
cd "$work" || exit 1
export PYTHONUNBUFFERED=1
export TORCHINDUCTOR_CACHE_DIR=${TORCHINDUCTOR_CACHE_DIR:-$work/inductor-cache}  # compiled once
log() { echo "=== $(date +%T) $*" | tee -a "$out/summary.txt"; }
# Each command runs in the foreground (timeout --foreground), so that a Ctrl-C reaches it and it
# stops as it does by hand, saving what it queued; the trap, run once it has, stops the stages.
# The way to go on that a stopped run printed names its checkpoint from the work folder, where it ran.
stopped() {
  log "stopped by $1 in the stage ${stage:-before the first} (stages done: ${done_stages[*]:-none}); a command" \
    "printed above to go on runs from $work"
}
trap 'stopped "a Ctrl-C"; exit 130' INT
trap 'stopped "a SIGTERM"; exit 143' TERM
done_stages=()
failed=()  # the runs that failed, for the exit status
# The readers of a command's output outlive a Ctrl-C or a SIGTERM sent to every process (ignored
# in them), so that its last lines, the way to go on among them, still reach the log.
# Progress bars off the log: each redraw of a bar (tqdm begins it with a carriage return) is cut
# off, to its closing bracket, rate "N batch/s" or "N s/batch". A line that was only bars goes; a
# warning printed after a bar, on its line, stays.
rate='((batch|img)/s|s/(batch|img))'
quiet() { ( trap '' INT TERM; sed -u 's/^\r//; s/\r/\n/g' | sed -u -E "\\#$rate#{s#^.*$rate[^]]*]##;/^\$/d}" ); }
keep() { ( trap '' INT TERM; exec tee "$@" ); }
common=(--attributes_file fashion-product-images/styles.csv)
fast_recipe=(--batch-size 256 --lr 4e-3 --warmup-epochs 2 --schedule cosine --epochs 45)
read -r -a fast_flags <<< "${FAST_FLAGS:-}"  # later flags win: --epochs 30 replaces the 45
fast_recipe+=("${fast_flags[@]}")

# This project's GPU machines send back at most 8 files from OUT, and which ones they drop (summary.txt,
# say) is not ours to choose: said first, so that the stages can go in two calls instead.
declare -A files_of=([variants]=1 [warm]=0 [faithful]=2 [fast]=2 [test]=2 [seeds]=2 [bench]=1 [profile]=1
                     [startup-16]=0 [startup-256]=0)
planned=1  # summary.txt
for stage in "${stages[@]}"; do planned=$((planned + files_of[$stage])); done
if [ "$planned" -gt 8 ]; then
  log "note: these stages write up to $planned files to OUT; a machine that sends back 8 at most (this project's" \
    "GPU machines) drops some: run them in two calls"
fi

log "machine"
machine=$({ nvidia-smi --query-gpu=name,memory.total,driver_version --format=csv,noheader || echo "no nvidia-smi"
  python3 -c 'import torch, torchvision, PIL
print("torch", torch.__version__, "torchvision", torchvision.__version__, "pillow", PIL.__version__)
print("torch sees", torch.cuda.get_device_name(0) if torch.cuda.is_available() else "no GPU")'
  echo "cpu cores: $(nproc)"; } 2>&1)
echo "$machine" | tee -a "$out/summary.txt"
if [[ $machine != *"torch sees "* ]]; then
  log "stopped: python3 could not run PyTorch (above); install requirements.txt for the python3 on PATH"
  exit 3
fi
if [[ $machine == *"torch sees no GPU"* && -z ${FASHION_GPU_ALLOW_CPU:-} ]]; then
  log "stopped: PyTorch sees no GPU, and every stage would time the CPU (FASHION_GPU_ALLOW_CPU=1 runs them anyway)"
  exit 3
fi

# Every command runs under `timeout --foreground -k 15 LIMIT`: the scripts stop on a SIGTERM as on a Ctrl-C,
# saving what they queued, and one that does not within 15 s is killed (a lost signal never costs
# the rest of the machine's time).
ended() {  # status, limit, log file: how a command ended, for summary.txt
  case $1 in
    0) echo "finished" ;;
    124) echo "cut off at its limit of $2 s" ;;
    137) echo "killed 15 s after its limit of $2 s, as it had not stopped on timeout's SIGTERM" ;;
    *) echo "failed (status $1): $(grep -v '^[[:space:]]*$' "$3" 2>/dev/null | tail -n 1)" ;;
  esac
}

count_failure() {  # status, name[, training]: a command that did not finish; a training run cut
  # off at its limit is none, its epochs timed in its metrics.csv (test, bench and the others'
  # figures come at their end, and would be missing)
  [[ $1 == 0 || ( $1 == 124 && ${3:-} == training ) ]] || failed+=("$2")
}

prepare() {
  [ -f val.csv ] && return
  log "unpack and split"
  tar -xzf "$archive" -C "$work" 2>&1 | tee -a "$out/summary.txt"
  [ "${PIPESTATUS[0]}" = 0 ] || { log "stopped: could not unpack $archive"; exit 1; }
  python3 "$repo/split_data.py" --input fashion-product-images --output . 2>&1 | quiet | tee -a "$out/summary.txt"
  [ "${PIPESTATUS[0]}" = 0 ] || { log "stopped: could not split the catalog of $archive (above)"; exit 1; }
}

prepare_small() {  # 8,000 training and 2,000 validation images, for the start-up runs
  prepare
  [ -f small/val.csv ] && return
  python3 "$repo/split_data.py" --input fashion-product-images --output small --max-images 10000 2>&1 | quiet
  [ "${PIPESTATUS[0]}" = 0 ] || { log "stopped: could not split 10,000 pictures into small/"; exit 1; }
}

faithful_flags() {  # into the array flags: $FAITHFUL_FLAGS if set (say, after 'profile' alone);
  # else the fastest configuration from 'variants', if it ran; else train.py's defaults
  read -r -a flags <<< "${FAITHFUL_FLAGS:-$(sed -n 's/^fastest: \(.*\)  (.*/\1/p' "$out/variants.txt" 2>/dev/null)}"
}

epoch_seconds() {  # name: each epoch's seconds from the run's metrics.csv
  awk -F, 'NR > 1 { printf "  epoch %s %.1f s", $1, $3 }' "checkpoints/$1/metrics.csv" 2>/dev/null
}

score() {  # name [test.py flag ...]: test.py on the run's last checkpoint, timed; its figures into
  # summary.txt and, when it finished without flags, its metrics.json to OUT (never an earlier
  # call's, left in the work folder)
  local what="test.py on $1${2:+ ${*:2}}" folder="eval-$1${2:+-flags}" start
  log "$what"
  rm -rf "$folder"
  [ $# = 1 ] && rm -f "$out/eval-$1.json"
  start=$(date +%s.%N)
  timeout --foreground -k 15 40 python3 "$repo/test.py" --checkpoint "checkpoints/$1/last.pth" --output "$folder" \
    "${@:2}" 2>&1 | keep "$work/score.txt"
  local status=${PIPESTATUS[0]}
  cat "$work/score.txt" >> "$out/summary.txt"
  count_failure "$status" "$what"
  local seconds
  seconds=$(awk -v s="$start" -v e="$(date +%s.%N)" 'BEGIN { printf "%.1f", e - s }')
  log "$what: $(ended "$status" 40 "$work/score.txt"), $seconds s wall-clock"
  [ "$status" = 0 ] && [ $# = 1 ] && cp "$folder/metrics.json" "$out/eval-$1.json"
}

timed_run() {  # name, time limit, train.py flags...
  local name=$1 limit=$2 start; shift 2
  rm -rf "checkpoints/$name"  # a fresh run each time: train.py refuses to write over an earlier one
  start=$(date +%s)
  local logs=${run_logs:-$out}  # where its log and metrics.csv go
  rm -f "$logs/$name-metrics.csv"  # an earlier call's, which a failed run would leave in place
  timeout --foreground -k 15 "$limit" python3 "$repo/train.py" "${common[@]}" --run-name "$name" "$@" 2>&1 | quiet | keep "$logs/$name.txt"
  local status=${PIPESTATUS[0]}
  count_failure "$status" "$name" training
  log "$name run: $(( $(date +%s) - start )) s wall-clock, start-up, decoding and validation included;" \
      "$(ended "$status" "$limit" "$logs/$name.txt")"
  # train.py's own account, after its imports: starting CUDA, the pictures, the first epoch and
  # validation apart, the saving; the wall-clock above minus its total is Python and the imports.
  grep '^time:' "$logs/$name.txt" | tee -a "$out/summary.txt"
  cp "checkpoints/$name/metrics.csv" "$logs/$name-metrics.csv" 2>/dev/null
}

for stage in "${stages[@]}"; do
  case $stage in
    variants)
      log "the training step in each configuration, batch 16"
      # A start-up with cuDNN's search took 20 to 30 s, a cold compile a minute or more: no new
      # start-up after 90 s still reaches the sixth, train.py's --compile in our graph with
      # cuDNN's search (after torchvision's layers, the other layout, --compile, and --compile
      # without its loss, which finds the model's kernels compiled).
      timeout --foreground -k 15 200 python3 "$repo/benchmarks/step_variants.py" --seconds 2 --budget 90 2>&1 | keep "$out/variants.txt"
      status=${PIPESTATUS[0]} && count_failure "$status" variants
      log "variants: $(ended "$status" 200 "$out/variants.txt")" ;;
    warm)
      prepare_small
      faithful_flags
      log "warming up: 2 epochs of 8,000 images at batch 16 (a first compile); flags: ${flags[*]:-defaults}"
      run_logs=$work/warm-logs && mkdir -p "$run_logs"
      timed_run warm 200 --train-csv small/train.csv --val-csv small/val.csv --epochs 2 "${flags[@]}" >/dev/null
      unset run_logs ;;
    faithful)
      prepare
      faithful_flags
      log "the tutorial's schedule: 50 epochs, batch 16, Adam 1e-3; flags: ${flags[*]:-defaults}"
      timed_run faithful 360 "${flags[@]}" ;;  # H200: 317 s (defaults, 11-28), 228 s (bf16, compiled, warm)
    fast)
      prepare
      log "a faster schedule: ${fast_recipe[*]}"
      timed_run fast 110 "${fast_recipe[@]}" ;;
    test)
      for run in faithful fast; do  # those run on this machine, in this call or an earlier one
        if [ -f "checkpoints/$run/last.pth" ]; then
          score "$run"
        else
          log "test.py on $run: no run of that name on this machine"
        fi
      done
      # Its layout before 2026-12-04, for the time NCHW saves on CUDA (its default there now)
      if [ -f checkpoints/faithful/last.pth ]; then score faithful --channels-last on; fi ;;
    seeds)
      prepare
      run_logs=$work/seed-logs && mkdir -p "$run_logs"
      for seed in 43 44; do
        log "the faster schedule with --seed $seed${FAST_FLAGS:+ $FAST_FLAGS}"
        timed_run "fast-seed$seed" 110 "${fast_recipe[@]}" --seed "$seed" >/dev/null
        score "fast-seed$seed"
      done
      unset run_logs ;;
    bench)
      prepare
      log "benchmark"
      FASHION_DATA=$work/fashion-product-images timeout --foreground -k 15 150 python3 "$repo/benchmarks/bench.py" \
        --images 32000 --seconds 4 --rounds 2 --work "$work/bench" 2>&1 | quiet | keep "$out/bench.txt"
      status=${PIPESTATUS[0]} && count_failure "$status" bench
      log "bench: $(ended "$status" 150 "$out/bench.txt")" ;;
    profile)
      log "where the step's GPU time goes, batch 16"
      rm -f "$out/profile.txt"  # its three runs are added to it: none of an earlier call's
      for flags in "" "--channels-last on" "--compile"; do
        limit=$([ "$flags" = --compile ] && echo 150 || echo 90)  # a cold compile takes a minute or more
        timeout --foreground -k 15 "$limit" python3 "$repo/benchmarks/profile_step.py" $flags 2>&1 | keep -a "$out/profile.txt"
        status=${PIPESTATUS[0]} && count_failure "$status" "profile ${flags:-(defaults)}"
        log "profile ${flags:-(defaults)}: $(ended "$status" "$limit" "$out/profile.txt")"
      done ;;
    startup-16|startup-256)
      prepare_small
      batch=${stage#startup-}
      log "start-up at batch $batch: epoch 1 has cuDNN's search and the graph capture, epoch 2 the first validation's"
      run_logs=$work/startup-logs && mkdir -p "$run_logs"
      for layout in on off; do
        for search in on off; do
          name=startup-b$batch-cl-$layout-search-$search
          timed_run "$name" 90 --train-csv small/train.csv --val-csv small/val.csv --batch-size "$batch" \
            --channels-last "$layout" --cudnn-benchmark "$search" --epochs 3 --val-every 2 >/dev/null
          log "$name:$(epoch_seconds "$name")"
        done
      done
      unset run_logs ;;
  esac
  done_stages+=("$stage")
done
if [ ${#failed[@]} -gt 0 ]; then
  log "done: ${stages[*]}; failed: ${failed[*]}"
  exit 1
fi
log "done: ${stages[*]}"
