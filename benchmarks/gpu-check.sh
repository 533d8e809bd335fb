#!/usr/bin/env bash
# The GPU check: the full preset on one GPU, time-boxed so it ends within about 8 minutes.
#   usage: benchmarks/gpu-check.sh OUTDIR [DATA]      (DATA: a CIFAR-10 source; default synthetic)
# Three parts, each its own pytest run with its own log (and JSON), so a part that overruns its
# limit loses only itself (benchmarks that finished are still written):
#   tests  the CUDA-only unit tests (real CUDA-graph capture, device loader, sync clock, peaks)
#   speed  the loader group (PIL DataLoader w0/w2 on the CPU vs device-resident on CPU and GPU),
#          then C8 (3 epochs): eager, best (compiled, CUDA graphs per region), cuda-graph (the whole
#          step as one CUDA graph) and cuda-graph-compiled, the single-change variants,
#          compile-default and compile-reduce-overhead; max-autotune is left out (many minutes to build)
#   lab    C4-C7, Q3b, Q1-Q4, C2, C3 at full size (50,000 images, batch 128), 2 epochs each,
#          in that order so the questions not yet measured on a GPU come first
#   d1     (not in the default PARTS) D1 on the GPU, batch 32, 128, ... until it runs out of memory,
#          50 batches per epoch; D2-D4 need two GPUs and are skipped with the reason on one
# Environment: PYTHON (default python3), LAB_DEVICE (default cuda), TESTS_LIMIT/SPEED_LIMIT/LAB_LIMIT
# seconds, PARTS (default "tests speed lab"), SELECT (a pytest -k expression for the speed and lab
# parts, e.g. "eager or best"), EXTRA (more pytest arguments for them, split on spaces, e.g.
# --lab-batches 2 for a dry run on a CPU).
set -uo pipefail
OUT=${1:?usage: benchmarks/gpu-check.sh OUTDIR [DATA]}
DATA=${2:-synthetic}
PY=${PYTHON:-python3}
DEVICE=${LAB_DEVICE:-cuda}
cd "$(dirname "$0")/.."
mkdir -p "$OUT"
export PYTHONPATH="$PWD${PYTHONPATH:+:$PYTHONPATH}" PYTHONUNBUFFERED=1
export RESNET_LAB_CACHE=${RESNET_LAB_CACHE:-/tmp/resnet_lab_cache}
{ date -u; nvidia-smi --query-gpu=name,memory.total,driver_version --format=csv 2>&1;
  $PY -c "import torch, torchvision, pytest_benchmark; print('torch', torch.__version__, 'torchvision', torchvision.__version__, 'pytest-benchmark', pytest_benchmark.__version__, 'cpus', __import__('os').cpu_count())"; } > "$OUT/machine.txt" 2>&1
cat "$OUT/machine.txt"

part() {  # part NAME LIMIT_S PYTEST_ARGS...   (test files are given in the order they should run)
  local name=$1 limit=$2; shift 2
  local start=$SECONDS
  # -W default: show library warnings (e.g. from torch.compile) instead of failing on them as the unit tests do.
  timeout --signal=INT --kill-after=15 "$limit" $PY -m pytest -p no:cacheprovider -W default \
    --lab-preset full --lab-data "$DATA" --lab-device "$DEVICE" --lab-out "$OUT/lab-output" \
    --benchmark-json "$OUT/$name.json" --benchmark-columns=median,mean,stddev,rounds ${SELECT:+-k "$SELECT"} "$@" ${EXTRA:-} \
    > "$OUT/$name.log" 2>&1
  local status=$?
  echo "part $name: exit $status after $((SECONDS - start)) s (limit $limit s)"
  grep -E "passed|failed|error" "$OUT/$name.log" | tail -n 3
}

PARTS=${PARTS:-tests speed lab}
B=benchmarks
if [[ " $PARTS " == *" tests "* ]]; then
  start=$SECONDS
  timeout --signal=INT --kill-after=15 "${TESTS_LIMIT:-90}" $PY -m pytest -p no:cacheprovider -m cuda -rs \
    tests/test_graphstep.py tests/test_fastloader.py tests/test_timing.py tests/test_flops.py > "$OUT/tests.log" 2>&1
  echo "part tests: exit $? after $((SECONDS - start)) s"
  tail -n 1 "$OUT/tests.log"
fi
if [[ " $PARTS " == *" speed "* ]]; then
  part speed "${SPEED_LIMIT:-250}" $B/test_loader.py $B/test_c8_speed.py --lab-epochs 3 --lab-workers 8,16 \
    --deselect "$B/test_c8_speed.py::test_c8_variant[device=$DEVICE-variant=compile-max-autotune]"
fi
if [[ " $PARTS " == *" lab "* ]]; then
  part lab "${LAB_LIMIT:-120}" $B/test_c7_batchnorm.py $B/test_c6_optimizers.py $B/test_c4_workers_vs_best.py \
    $B/test_c5_cpu_vs_gpu.py $B/test_q3b_profile.py $B/test_q_structure.py $B/test_c2_phases.py $B/test_c3_workers.py \
    --lab-epochs 2 --lab-workers 8,16
fi
if [[ " $PARTS " == *" d1 "* ]]; then
  part d1 "${D1_LIMIT:-300}" $B/test_d1_batch_size.py $B/test_d2_speedup.py $B/test_d3_compute_comm.py $B/test_d4_allreduce.py \
    --lab-batches 50
fi
ls -la "$OUT"
