#!/usr/bin/env bash
# A real history for `resnet-lab history` (issue 22): the A/B gate's two benchmarks (C2 train_s at 3 epochs x 1
# batch, the loader's round time at workers=0), saved with --benchmark-autosave into one storage folder, 3 runs on
# each of 4 commits of a throwaway branch in a clone; the 3rd commit plants a slower training step (one extra
# no-grad forward of the batch per step, about +1/3 of a CPU step). Resumable: runs already saved are skipped,
# and no run starts after BUDGET_S seconds (so each call fits one `/work/bin/quiet` window); exit 3 = runs left.
#   scripts/history_trial.sh WORK [BUDGET_S]      then: resnet-lab history WORK/storage --html ... --markdown ...
set -euo pipefail
WORK="$(mkdir -p "${1:?usage: scripts/history_trial.sh WORK [BUDGET_S]}" && cd "$1" && pwd)"
BUDGET_S="${2:-600}"
SRC="$(cd "$(dirname "$0")/.." && pwd)"
REPO="$WORK/repo"
RUNS_PER_COMMIT=3
PYTHON="${PYTHON:-python}"
# One torch thread, as each side of `resnet-lab ab` runs: on this shared 2-core machine a 2-thread step stalls at
# every OpenMP barrier another process's time slice lands on (a first try at 2 threads: C2 train_s 9.5 -> 21.7 s
# over the 6 unchanged runs, the load average rising 1.8 -> 4.4).
export OMP_NUM_THREADS="${OMP_NUM_THREADS:-1}"

commit() {  # commit MESSAGE MINUTES: committed MINUTES after the first, so the runs order by commit time
  local when
  when="$(date -u -d "@$(( $(cat "$WORK/epoch") + 60 * $2 ))" +%Y-%m-%dT%H:%M:%S+00:00)"
  git -C "$REPO" add -A
  GIT_AUTHOR_DATE="$when" GIT_COMMITTER_DATE="$when" git -C "$REPO" -c user.name=history-trial -c user.email=trial@localhost commit -q -m "$1"
}

if [ ! -d "$REPO" ]; then
  git clone --quiet "$SRC" "$REPO"
  git -C "$REPO" checkout -q -b history-throwaway
  date -u +%s > "$WORK/epoch"
  echo "trial commit 1" > "$REPO/HISTORY_TRIAL"; commit "history trial: commit 1 (no change)" 1
  echo "trial commit 2" > "$REPO/HISTORY_TRIAL"; commit "history trial: commit 2 (no change)" 2
  # The planted regression: a second, no-grad forward of every training batch.
  "$PYTHON" - "$REPO/resnet_lab/engine/step.py" <<'PY'
import sys, pathlib
p = pathlib.Path(sys.argv[1]); text = p.read_text()
old = "        optimizer.step()\n    return loss, logits\n"
assert old in text, "train_step changed: update the planted slowdown"
p.write_text(text.replace(old, "        optimizer.step()\n    with torch.no_grad():\n        model(x)  # planted slowdown (history trial)\n    return loss, logits\n"))
PY
  echo "trial commit 3" > "$REPO/HISTORY_TRIAL"; commit "history trial: commit 3 (planted: an extra forward per training step)" 3
  echo "trial commit 4" > "$REPO/HISTORY_TRIAL"; commit "history trial: commit 4 (no change after the slowdown)" 4
fi

mkdir -p "$WORK/storage"
start=$(date +%s)
mapfile -t COMMITS < <(git -C "$REPO" rev-list --reverse -4 history-throwaway)
for sha in "${COMMITS[@]}"; do
  git -C "$REPO" checkout -q --detach "$sha"
  for _ in $(seq "$RUNS_PER_COMMIT"); do
    done_runs=$(find "$WORK/storage" -name "*_${sha}_*.json" | wc -l)
    [ "$done_runs" -ge "$RUNS_PER_COMMIT" ] && break
    if [ $(( $(date +%s) - start )) -ge "$BUDGET_S" ]; then echo "history trial: budget of ${BUDGET_S}s spent; rerun for the rest" >&2; exit 3; fi
    echo "== $(date -u +%H:%M:%S) ${sha:0:8} run $((done_runs + 1)) (load $(cut -d' ' -f1-3 /proc/loadavg))"
    (cd "$REPO" && PYTHONPATH="$REPO" "$PYTHON" -m pytest -p no:cacheprovider -q \
      "benchmarks/test_c2_phases.py::test_c2_phases[device=cpu]" \
      "benchmarks/test_loader.py::test_loader_throughput[pipeline=dataloader-workers=0-device=cpu]" \
      --lab-device cpu --lab-epochs 3 --lab-batches 1 --lab-out "$WORK/lab-out" \
      --benchmark-autosave --benchmark-storage "file://$WORK/storage") > "$WORK/last-run.log" 2>&1 \
      || { tail -20 "$WORK/last-run.log" >&2; exit 1; }
  done
done
echo "history trial: all $(( 4 * RUNS_PER_COMMIT )) runs saved in $WORK/storage"
