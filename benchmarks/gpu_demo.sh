#!/usr/bin/env bash
# The demo at 640 px on a GPU, in one go: data, teacher, then the baseline and the distilled student side by
# side on the same card (params/demo-gpu.yaml caps each training run by its `hours`), each evaluated on val and
# test by benchmarks/kd_study.py. Rows go to the results file, tagged with the GPU's name.
#   bash benchmarks/gpu_demo.sh [params.yaml] [results.csv]
set -euo pipefail
params=${1:-params/demo-gpu.yaml}
results=${2:-benchmarks/results/kd_study_gpu.csv}
python=${PYTHON:-python}
# the baseline of the same schedule and the demo's recipe (the arm params/demo.yaml is)
arms="baseline-long $($python -c "import runpy; print(runpy.run_path('benchmarks/kd_study.py')['chosen_arm']())")"
started=$(date +%s)
say() { echo "gpu_demo: $(( $(date +%s) - started )) s: $*"; }

# the student's data first: the two runs below would otherwise both start drawing it in the same folder
$python -c "import distil, sys; distil.prepare_data(distil.DistillParams.load(sys.argv[1], teacher='none'))" "$params"
say "student data ready"
$python -m distil teacher train -f "$params"
say "teacher ready"
pids=()
for arm in $arms; do  # one results file each: two writers never share one
  $python benchmarks/kd_study.py --params "$params" --arms $arm --seeds 0 --results "${results%.csv}-$arm.csv" &
  pids+=($!)
done
failed=0
for pid in "${pids[@]}"; do wait "$pid" || failed=1; done
say "students trained (failed: $failed)"
$python - "$results" $arms <<'PY'
import sys
from pathlib import Path

import pandas as pd

results = Path(sys.argv[1])
parts = [results.with_name(f"{results.stem}-{arm}.csv") for arm in sys.argv[2:]]
rows = [pd.read_csv(results)] if results.exists() else []
merged = pd.concat(rows + [pd.read_csv(part) for part in parts if part.exists()], ignore_index=True)
merged.drop_duplicates(["setting", "seed", "run"], keep="first").to_csv(results, index=False)
for part in parts:
    part.unlink(missing_ok=True)
PY
$python benchmarks/kd_study.py --report --results "$results"
say "done"
exit $failed
