#!/usr/bin/env bash
# The GPU check: the whole lab as written on one GPU in one time box, then the C8 speed check.
#   usage: benchmarks/gpu-check.sh OUTDIR [DATA]      (DATA: a CIFAR-10 source; default synthetic)
# Parts, each its own pytest run with its own log, JSON and per-benchmark run log (.jsonl), so a
# part cut short by its time box keeps every benchmark that finished:
#   lab    every question C2-C7, Q1-Q4, Q3b in the full preset (50,000 images, batch 128, 5 epochs):
#          C3 first, because its point at the C3.2 count also answers C4, C5, C6 (sgd) and C7 (BN on)
#   c8     C8's eager, best, cuda-graph and cuda-graph-compiled variants (3 epochs), C3.2 from a
#          loader-only sweep of 8 and 16 workers
#   tests  the CUDA-only unit tests (real CUDA-graph capture, device loader, sync clock, peaks)
#   d1     (not in the default PARTS) D1 on the GPU, batch 32, 128, ... until it runs out of memory,
#          50 batches per epoch; D2-D4 need two GPUs and are skipped with the reason on one
# Environment: PARTS (default "lab c8"), PYTHON (default python3), LAB_DEVICE (default cuda),
# LAB_LIMIT / C8_LIMIT / D1_LIMIT / TESTS_LIMIT seconds (default 540 / 250 / 300 / 90), SELECT (a pytest -k
# expression for the lab and c8 parts), EXTRA (more pytest arguments for them, split on spaces).
# DRY_RUN=1: the same parts on the CPU with one batch per epoch, one test batch and workers 0,2, so the script
# can be checked without a GPU (CI runs it); time boxes stay as they are.
# Exit status: 0 when every part passed, else 1; each part's line says how it ended.
set -uo pipefail
OUT=${1:?usage: benchmarks/gpu-check.sh OUTDIR [DATA]}
DATA=${2:-synthetic}
PY=${PYTHON:-python3}
DEVICE=${LAB_DEVICE:-cuda}
DRY=()
if [[ "${DRY_RUN:-0}" == 1 ]]; then
  DEVICE=cpu
  DRY=(--lab-batches 1 --lab-eval-batches 1 --lab-epochs 1 --lab-workers 0,2)
fi
cd "$(dirname "$0")/.."
mkdir -p "$OUT" || exit 1
export PYTHONPATH="$PWD${PYTHONPATH:+:$PYTHONPATH}" PYTHONUNBUFFERED=1
export RESNET_LAB_CACHE=${RESNET_LAB_CACHE:-/tmp/resnet_lab_cache}
{ date -u; if command -v nvidia-smi >/dev/null; then nvidia-smi --query-gpu=name,memory.total,driver_version --format=csv 2>&1; else echo "no nvidia-smi (no NVIDIA driver here)"; fi;
  $PY -c "import torch, torchvision, pytest, pytest_benchmark; print('torch', torch.__version__, 'torchvision', torchvision.__version__, 'pytest', pytest.__version__, 'pytest-benchmark', pytest_benchmark.__version__, 'cpus', __import__('os').cpu_count())"; } > "$OUT/machine.txt" 2>&1
cat "$OUT/machine.txt"

failed=()
finish() {  # finish NAME STATUS START LIMIT
  local name=$1 status=$2 start=$3 limit=$4 how
  case $status in
    0) how="passed" ;;
    124|137) how="cut short by its ${limit} s time box" ;;
    5) how="collected nothing" ;;
    *) how="failed" ;;
  esac
  echo "part $name: exit $status ($how) after $((SECONDS - start)) s"
  [[ $status -eq 0 ]] || failed+=("$name")
}

part() {  # part NAME LIMIT_S PYTEST_ARGS...   (test files in the order they should run)
  local name=$1 limit=$2; shift 2
  local start=$SECONDS
  # -W default: show library warnings (e.g. from torch.compile) instead of failing on them as the unit tests do.
  timeout --signal=INT --kill-after=15 "$limit" $PY -m pytest -p no:cacheprovider -W default -rs \
    --lab-preset full --lab-data="$DATA" --lab-device "$DEVICE" --lab-out="$OUT/lab-output" \
    --benchmark-json "$OUT/$name.json" --benchmark-columns=median,mean,stddev,rounds ${SELECT:+-k "$SELECT"} \
    "$@" "${DRY[@]}" ${EXTRA:-} > "$OUT/$name.log" 2>&1
  local status=$?
  finish "$name" "$status" "$start" "$limit"
  grep -E "^(C[0-9]|JSON)|passed|failed|error" "$OUT/$name.log" | tail -n 12
}

PARTS=${PARTS:-lab c8}
B=benchmarks
for name in $PARTS; do
  case $name in
    lab)
      part lab "${LAB_LIMIT:-540}" $B/test_q_structure.py $B/test_q3b_profile.py $B/test_c3_workers.py \
        $B/test_c4_workers_vs_best.py $B/test_c5_cpu_vs_gpu.py $B/test_c6_optimizers.py $B/test_c7_batchnorm.py $B/test_c2_phases.py ;;
    c8)
      part c8 "${C8_LIMIT:-250}" $B/test_c8_speed.py --lab-epochs 3 --lab-workers 8,16 \
        -k "${SELECT:-eager or best or cuda-graph}" ;;
    tests)
      start=$SECONDS
      timeout --signal=INT --kill-after=15 "${TESTS_LIMIT:-90}" $PY -m pytest -p no:cacheprovider -m cuda -rs \
        tests/test_graphstep.py tests/test_fastloader.py tests/test_timing.py tests/test_flops.py tests/test_equivalence.py > "$OUT/tests.log" 2>&1
      status=$?
      # On a machine without CUDA every selected test skips: that is the expected outcome of a dry run.
      finish tests "$status" "$start" "${TESTS_LIMIT:-90}"
      tail -n 1 "$OUT/tests.log" ;;
    d1)
      part d1 "${D1_LIMIT:-300}" $B/test_d1_batch_size.py $B/test_d2_speedup.py $B/test_d3_compute_comm.py $B/test_d4_allreduce.py \
        --lab-batches 50 ;;
    *) echo "unknown part '$name' (parts: lab c8 tests d1)"; failed+=("$name") ;;
  esac
done
if [[ ${#failed[@]} -gt 0 ]]; then
  echo "gpu-check: parts that did not pass: ${failed[*]}"
  exit 1
fi
echo "gpu-check: all parts passed"
