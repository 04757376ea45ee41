"""Print the forecasting results table of docs/sequence.md.

For each published forecaster (`lstm-forecaster` and
`transformer-forecaster`, tags `sunspots` and `macrodata`), the script
loads the artifact from the hub, measures it on the test windows with its
training recipe, and prints one Markdown table per data set: the model's
test MAE and RMSE in the original units beside those of the persistence,
training-mean and AR(p) baselines, computed in the same run.

Usage:
    .venv/bin/python benchmarks/sequence_results.py [--hub DIR]
        [--recorded]

`--recorded` prints the metrics stored in the hub index instead of
measuring again. The artifacts themselves come from
`zoo hub rebuild --only lstm-forecaster:sunspots` and the other rows of
zoo/pretrained/recipes.json.
"""

import argparse
import os
import sys

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(
    __file__))))

from zoo import hub as hub_module  # noqa: E402

MODELS = ("lstm-forecaster", "transformer-forecaster")
TAGS = ("sunspots", "macrodata")
BASELINES = (("persistence", "persistence (last value)"),
             ("mean", "training mean"),
             ("ar", "AR(p) fitted on train"))


def table(tag, results):
    """Return Markdown lines comparing the models and baselines of `tag`."""
    first = next(iter(results.values()))
    targets = sorted(key[len("test_mae_"):] for key in first
                     if key.startswith("test_mae_"))
    header = ["forecast", "test MAE", "test RMSE"] + [
        f"MAE {target}" for target in targets]
    lines = ["| " + " | ".join(header) + " |",
             "|" + "---|" * len(header)]

    def row(label, metrics, prefix):
        cells = [label, f"{metrics[f'{prefix}_mae']:.3f}",
                 f"{metrics[f'{prefix}_rmse']:.3f}"]
        cells += [f"{metrics[f'{prefix}_mae_{t}']:.3f}" for t in targets]
        return "| " + " | ".join(cells) + " |"

    for name, metrics in results.items():
        ratio = metrics["test_mae"] / metrics["persistence_mae"]
        lines.append(row(f"{name} ({ratio:.2f} x persistence)", metrics,
                         "test"))
    for prefix, label in BASELINES:
        lines.append(row(label, first, prefix))
    return lines


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--hub", help="hub folder (default: the "
                        "repository's zoo/pretrained)")
    parser.add_argument("--recorded", action="store_true",
                        help="print the index's metrics, do not measure")
    args = parser.parse_args(argv)

    for tag in TAGS:
        results = {}
        for name in MODELS:
            recorded, measured = (
                (hub_module.get_entry(name, tag, args.hub)[1]["metrics"],
                 None) if args.recorded
                else hub_module.measure_entry(name, tag, args.hub))
            results[name] = recorded if measured is None else measured
        print(f"\n{tag} (test windows, original units)\n")
        print("\n".join(table(tag, results)))
    return 0


if __name__ == "__main__":
    sys.exit(main())
