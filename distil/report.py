"""Print what a finished series produced: ``python -m distil.report params/demo.yaml``.

`make demo` ends with it: the comparison table from ``04_evaluate`` and where the executed
notebooks, runs and tables are.
"""

from __future__ import annotations

import pandas as pd

from distil.eval.comparison import gap_note
from distil.params import EvalParams


def main(params_file: str) -> int:
    params = EvalParams.load(params_file)
    table_path = params.eval_dir / "comparison.csv"
    if not table_path.exists():
        print(f"No comparison yet ({table_path} missing): run notebooks/04_evaluate.ipynb first.")
        return 1
    table = pd.read_csv(table_path, index_col="model")
    columns = ["mAP50", "mAP50-95", "precision", "recall", "params", "GFLOPs", "ms_per_image", "gap_closed"]
    with pd.option_context("display.width", 160, "display.float_format", "{:.3f}".format):
        print(f"\nTeacher, baseline and distilled student on the validation set ({params.name}):\n")
        print(table[columns].to_string())
    note = gap_note(table)
    if note:
        print(f"\n{note}")
    print(f"\nTables:              {params.eval_dir}")
    print(f"Executed notebooks:  {params.outputs_dir / 'notebooks' / params.name}")
    print(f"Runs:                {params.runs_dir}")
    print(f"Teacher:             {params.teacher_path}")
    return 0
