"""The `zoo` command line. This is the only module of the zoo that prints.

Each subcommand is a pair of functions: `_add_<name>` declares its
arguments and `_run_<name>` carries it out. TensorFlow is imported only by
the subcommands that need it, so `zoo list` returns at once.
"""

import argparse
import glob
import json
import logging
import os
import sys

logger = logging.getLogger("zoo")

RUNS_ROOT = "runs"


class CommandError(Exception):
    """An error the command line reports as one line, without a traceback."""


def _quiet_tensorflow():
    # TensorFlow's C++ start-up messages drown the command's own output.
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
    os.environ.setdefault("ABSL_MIN_LOG_LEVEL", "2")


def _parse_assignment(text):
    key, separator, raw = text.partition("=")
    if not separator or not key:
        raise CommandError(
            f"Invalid --set value {text!r}: expected KEY=VALUE, for example "
            "--set dropout=0.3 or --set filters=[16,32]."
        )
    try:
        value = json.loads(raw)
    except json.JSONDecodeError:
        value = raw
    return key.strip(), value


def _overrides(assignments):
    return dict(_parse_assignment(a) for a in assignments or [])


# --- list and info ----------------------------------------------------------

def _add_list(subparsers):
    parser = subparsers.add_parser(
        "list", help="list registered models",
        description="List registered models, optionally filtered.")
    parser.add_argument("pattern", nargs="?", default=None,
                        help="glob pattern on the name, such as 'cnn*'")
    parser.add_argument("--task", help="keep models of this task")
    parser.add_argument("--family", help="keep models of this family")
    parser.add_argument("--pretrained", action="store_true",
                        help="keep models with published weights")
    parser.add_argument("--json", action="store_true",
                        help="print the records as JSON")


def _run_list(args):
    import zoo

    names = zoo.list_models(args.pattern, task=args.task, family=args.family,
                            pretrained=True if args.pretrained else None)
    if args.json:
        print(json.dumps([zoo.model_info(n) for n in names], indent=2))
        return 0
    if not names:
        print("No registered model matches. Run `zoo list` with no "
              "arguments to see them all.", file=sys.stderr)
        return 1
    width = max(len(n) for n in names)
    for name in names:
        spec = zoo.get_spec(name)
        tags = f"  [weights: {', '.join(spec.pretrained)}]" \
            if spec.pretrained else ""
        print(f"{name:<{width}}  {spec.task:<24} {spec.description}{tags}")
    return 0


def _add_info(subparsers):
    parser = subparsers.add_parser(
        "info", help="show a model's record and parameter count")
    parser.add_argument("name", help="registered model name")
    parser.add_argument("--set", action="append", metavar="KEY=VALUE",
                        help="hyperparameter override (JSON value)")


def _run_info(args):
    import zoo

    record = zoo.model_info(args.name)
    _quiet_tensorflow()
    model = zoo.get_model(args.name, **_overrides(args.set))
    record["parameters"] = int(model.count_params())
    print(json.dumps(record, indent=2))
    return 0


# --- train ------------------------------------------------------------------

def _add_train(subparsers):
    parser = subparsers.add_parser(
        "train", help="train a model on its data set, evaluate and export",
        description="Train a registered model on its default (embedded) "
        "data set, evaluate it on the test split and export it for TF "
        "Serving.")
    parser.add_argument("name", help="registered model name")
    parser.add_argument("--dataset", help="data set (default: the model's)")
    parser.add_argument("--epochs", type=int, help="maximum epochs")
    parser.add_argument("--batch-size", type=int, help="batch size")
    parser.add_argument("--learning-rate", type=float, help="learning rate")
    parser.add_argument("--seed", type=int, default=0,
                        help="seed of weights, shuffling and augmentation "
                        "(default: 0)")
    parser.add_argument("--set", action="append", metavar="KEY=VALUE",
                        help="hyperparameter override, repeatable; VALUE is "
                        "JSON, such as filters=[16,32]")
    parser.add_argument("--augment", metavar="SPEC",
                        help="augmentation spec, such as "
                        "rotate:15,translate:0.1,noise:0.05")
    parser.add_argument("--weights", metavar="TAG",
                        help="fine-tune from these pretrained weights")
    parser.add_argument("--run-dir", help="run folder (default: "
                        "runs/NAME/TIMESTAMP)")
    parser.add_argument("--base", default="saved_models",
                        help="TF Serving base folder (default: saved_models)")
    parser.add_argument("--no-export", action="store_true",
                        help="skip the SavedModel export")
    parser.add_argument("--data-dir", help="tensorflow-datasets data_dir")
    parser.add_argument("--download", action="store_true",
                        help="let tensorflow-datasets download data")
    parser.add_argument("--strategy", choices=[
        "auto", "default", "mirrored", "multi-worker", "tpu"],
        help="train with this tf.distribute strategy in a custom loop; "
        "auto picks multi-worker when TF_CONFIG names a cluster, tpu when "
        "TPU_NAME or /dev/accel* names a TPU, mirrored for several GPUs "
        "(default: one device with Keras fit)")
    parser.add_argument("--precision", choices=[
        "float32", "mixed_float16", "mixed_bfloat16"],
        help="dtype policy; mixed_float16 adds loss scaling (default: "
        "float32)")


def _run_train(args):
    import zoo

    spec = zoo.get_spec(args.name)
    overrides = _overrides(args.set)
    spec.hyperparameters(overrides)
    _quiet_tensorflow()
    from training import trainer
    from zoo import export

    from training import distributed

    try:
        result = trainer.train(
            args.name, dataset=args.dataset, epochs=args.epochs,
            batch_size=args.batch_size, learning_rate=args.learning_rate,
            seed=args.seed, overrides=overrides, run_dir=args.run_dir,
            runs_root=RUNS_ROOT, weights=args.weights, augment=args.augment,
            data_dir=args.data_dir, download=args.download,
            strategy=args.strategy, precision=args.precision,
        )
    except distributed.WorkerLostError as error:
        raise CommandError(str(error)) from error
    print(f"run: {result.run_dir}")
    for key, value in sorted(result.metrics.items()):
        if isinstance(value, float):
            print(f"{key}: {value:.4f}")
        else:
            print(f"{key}: {value}")
    if args.no_export:
        return 0
    if args.strategy and not distributed.is_chief():
        print("export: skipped on this worker; the chief exports")
        return 0
    from zoo import export_checks

    serving = result.recipe.serving_model(result.model)
    inputs = export_checks.sample_inputs(result.recipe, result.bundle)
    try:
        exported, results = export_checks.export_and_check(
            serving, spec, inputs, model=result.model, recipe=result.recipe,
            hyperparameters=result.hyperparameters, base_dir=args.base)
    except export_checks.ExportCheckError as error:
        _print_checks(error.results)
        print(f"zoo train: error: {error} The run folder is kept; no "
              "version folder was written.", file=sys.stderr)
        return 1
    _print_checks(results)
    _print_export(exported, spec,
                  export.rest_requests(spec, exported.signatures, inputs))
    return 0


def _print_export(exported, spec, requests=None):
    from zoo import export

    base = os.path.abspath(os.path.dirname(exported.path))
    root = os.path.dirname(base)
    print(f"exported: {exported.path} (version {exported.version})")
    print(f"signatures: {', '.join(exported.signatures)}; warm-up "
          f"requests: {exported.warmup_records}")
    print("serve it with TF Serving (REST on 8501, gRPC on 8500):")
    print(f"  docker run -p 8501:8501 -p 8500:8500 "
          f"-v {base}:/models/{spec.name} "
          f"-e MODEL_NAME={spec.name} tensorflow/serving")
    print(f"or every model under {root} with its version policy:")
    print(f"  docker run -p 8501:8501 -p 8500:8500 -v {root}:/models "
          f"tensorflow/serving --model_config_file=/models/"
          f"{export.MODEL_CONFIG_FILE}")
    url = f"http://localhost:8501/v1/models/{spec.name}"
    if not requests:
        print(f"  curl -d @request.json {url}:predict")
        return
    for verb, body in requests:
        text = json.dumps(body, separators=(",", ":"))
        print(f"  curl -d '{text}' {url}:{verb}")


def _print_checks(results):
    for result in results:
        status = result.status.upper() if result.status != "n/a" \
            else result.status
        detail = f" ({result.detail})" if result.detail else ""
        print(f"check {result.name}: {status}{detail}")


# --- export -----------------------------------------------------------------

def _add_export(subparsers):
    parser = subparsers.add_parser(
        "export", help="export a trained model for TF Serving",
        description="Export the latest run of NAME (or the run folder "
        "RUN_DIR) as a SavedModel under BASE/NAME/VERSION.")
    parser.add_argument("target", metavar="NAME|RUN_DIR",
                        help="model name (its latest run) or a run folder")
    parser.add_argument("--version", type=int,
                        help="version number (default: next free)")
    parser.add_argument("--base", default="saved_models",
                        help="TF Serving base folder (default: saved_models)")
    parser.add_argument("--weights", metavar="TAG",
                        help="export these pretrained weights instead of a "
                        "run")
    parser.add_argument("--check", action="store_true",
                        help="export nothing; run the export checks on the "
                        "existing version (--version, default: highest)")
    parser.add_argument("--skip-checks", action="store_true",
                        help="export without running the checks")
    parser.add_argument("--format", choices=("saved_model", "tflite"),
                        default="saved_model",
                        help="saved_model (default), or tflite to also "
                        "write VERSION/model.tflite and check it in the "
                        "TFLite interpreter")
    parser.add_argument("--version-policy", metavar="POLICY",
                        help="TF Serving version policy of this model in "
                        "BASE/models.config: latest:N, all or "
                        "specific:V1,V2 (default: keep, else latest:1)")


def _latest_run(name):
    # metrics.json is written last, so only finished runs have it.
    runs = sorted(
        glob.glob(os.path.join(RUNS_ROOT, name, "*", "metrics.json")),
        key=os.path.getmtime,
    )
    if not runs:
        raise CommandError(
            f"No finished run of model '{name}' under {RUNS_ROOT}/{name}/. "
            f"Train one with `zoo train {name}` (running it again resumes "
            "an interrupted run), or pass a run folder."
        )
    return os.path.dirname(runs[-1])


def load_run(run_dir):
    """Return `(spec, model, recipe)` of a run folder's `best.keras`."""
    import zoo

    config_path = os.path.join(run_dir, "config.json")
    model_path = os.path.join(run_dir, "best.keras")
    metrics_path = os.path.join(run_dir, "metrics.json")
    for path in (config_path, model_path, metrics_path):
        if not os.path.isfile(path):
            raise CommandError(
                f"{path!r} not found: {run_dir!r} is not a finished run "
                "folder of `zoo train` (a run writes metrics.json when it "
                "ends). Run the same `zoo train` command again to resume "
                "and finish it."
            )
    with open(config_path) as handle:
        config = json.load(handle)
    spec = zoo.get_spec(config["model"])
    _quiet_tensorflow()
    import keras

    import zoo.layers  # noqa: F401  (registers custom layers)
    from training.recipes import resolve_recipe
    from training.trainer import DEFAULT_SETTINGS

    model = keras.saving.load_model(model_path)
    settings = {**DEFAULT_SETTINGS, **config.get("settings", {})}
    return spec, model, resolve_recipe(spec, settings)


def _run_export(args):
    import zoo

    _quiet_tensorflow()
    from zoo import datasets, export, export_checks

    run_dir = None
    if os.path.isdir(args.target):
        run_dir = args.target
    elif not args.weights:
        zoo.get_spec(args.target)
        run_dir = _latest_run(args.target)
    if run_dir is not None:
        spec, model, recipe = load_run(run_dir)
        with open(os.path.join(run_dir, "config.json")) as handle:
            config = json.load(handle)
        hyperparameters = config.get("hyperparameters")
        dataset = config.get("dataset") or spec.dataset
    else:
        spec = zoo.get_spec(args.target)
        from training.recipes import resolve_recipe
        from training.trainer import DEFAULT_SETTINGS

        model = zoo.get_model(args.target, weights=args.weights)
        recipe = resolve_recipe(spec, DEFAULT_SETTINGS)
        hyperparameters, dataset = dict(spec.defaults), spec.dataset
    serving = recipe.serving_model(model)
    inputs = export_checks.sample_inputs(recipe, datasets.load(dataset))
    context = {"model": model, "recipe": recipe,
               "hyperparameters": hyperparameters}

    if args.check:
        model_base = os.path.join(args.base, spec.name)
        version_dir = os.path.join(model_base, str(args.version)) \
            if args.version else export.resolve_version_dir(model_base)
        export.resolve_version_dir(version_dir)
        results = export_checks.check_existing(version_dir, serving, spec,
                                               inputs, **context)
        print(f"checked: {version_dir}")
        _print_checks(results)
        return 0 if all(r.passed for r in results) else 1
    try:
        exported, results = export_checks.export_and_check(
            serving, spec, inputs, base_dir=args.base, version=args.version,
            tflite=args.format == "tflite",
            version_policy=args.version_policy,
            check=not args.skip_checks, **context)
    except export_checks.ExportCheckError as error:
        _print_checks(error.results)
        print(f"zoo export: error: {error} No version folder was written; "
              "fix the model or pass --skip-checks.", file=sys.stderr)
        return 1
    _print_checks(results)
    if args.format == "tflite":
        tflite_path = os.path.join(exported.path, export_checks.TFLITE_FILE)
        print(f"tflite: {tflite_path}")
    _print_export(exported, spec,
                  export.rest_requests(spec, exported.signatures, inputs))
    return 0


# --- export-matrix ----------------------------------------------------------

def _add_export_matrix(subparsers):
    parser = subparsers.add_parser(
        "export-matrix", help="check every model's export and write the "
        "export matrix",
        description="Train each registered model one step on its smoke "
        "configuration, export it and run every export check, then write "
        "a Markdown table with one row per model and one column per check.")
    parser.add_argument("pattern", nargs="?", default=None,
                        help="glob pattern on model names (default: all)")
    parser.add_argument("--output", default="docs/export-matrix.md",
                        help="Markdown file to write (default: "
                        "docs/export-matrix.md)")
    parser.add_argument("--no-tflite", action="store_true",
                        help="skip the TFLite conversion column")


def _run_export_matrix(args):
    import zoo

    names = zoo.list_models(args.pattern)
    if not names:
        raise CommandError(f"No registered model matches {args.pattern!r}. "
                           "Run `zoo list` to see them.")
    _quiet_tensorflow()
    from zoo import export_checks

    rows = export_checks.build_matrix(
        names, tflite=not args.no_tflite,
        progress=lambda name: print(f"checking {name}", flush=True))
    command = "zoo export-matrix" + (f" {args.pattern!r}"
                                     if args.pattern else "")
    export_checks.write_matrix(args.output, rows, command)
    failed = 0
    for row in rows:
        bad = [r.name for r in row.results.values() if not r.passed]
        failed += bool(bad)
        print(f"{row.name}: " + (f"FAIL ({', '.join(bad)})" if bad
                                 else "every check passes"))
    print(f"wrote {args.output}: {len(rows) - failed} of {len(rows)} "
          "models pass every check")
    return 0


# --- predict ----------------------------------------------------------------

def _add_predict(subparsers):
    parser = subparsers.add_parser(
        "predict", help="run a TF Serving request against a SavedModel",
        description="Run a TF Serving REST request body against an "
        "exported SavedModel and print the response as TF Serving would.")
    parser.add_argument("saved_model_dir",
                        help="version folder or TF Serving base path")
    parser.add_argument("--input", required=True, metavar="FILE",
                        help='JSON body ({"instances": [...]}) or .npy array')
    parser.add_argument("--signature", default=None,
                        help="signature name (default: the body's "
                        "signature_name, else serving_default)")


def _run_predict(args):
    _quiet_tensorflow()
    from zoo import predict

    body = predict.read_request(args.input)
    response = predict.predict(args.saved_model_dir, body, args.signature)
    print(json.dumps(response))
    return 0


# --- pretrained hub ---------------------------------------------------------

def _add_publish(subparsers):
    parser = subparsers.add_parser(
        "publish", help="publish a finished run as pretrained weights",
        description="Measure a finished `zoo train` run on its test split "
        "and write its .keras file, a SavedModel archive and an index entry "
        "into a hub folder.")
    parser.add_argument("run_dir", metavar="RUN_DIR",
                        help="run folder with config.json and best.keras")
    parser.add_argument("--tag", required=True,
                        help="weights tag, such as 'digits'")
    parser.add_argument("--hub", help="hub folder (default: the "
                        "repository's zoo/pretrained)")
    parser.add_argument("--license", default="Apache-2.0",
                        help="license of the weights (default: Apache-2.0)")
    parser.add_argument("--command", dest="reproduce",
                        help="command recorded to reproduce the weights "
                        "(default: rebuilt from the run's config.json)")


def _run_publish(args):
    _quiet_tensorflow()
    from zoo import hub

    entry = hub.publish(args.run_dir, args.tag, hub=args.hub,
                        command=args.reproduce, license=args.license)
    for kind, record in sorted(entry["files"].items()):
        print(f"{kind}: {record['path']} ({record['size']} bytes, sha256 "
              f"{record['sha256']})")
    for key, value in sorted(entry["metrics"].items()):
        print(f"{key}: {value:.4f}")
    print(f"reproduce: {entry['command']}")
    return 0


def _add_download(subparsers):
    parser = subparsers.add_parser(
        "download", help="download and verify pretrained weights",
        description="Download the artifacts of NAME:TAG into the cache "
        "(ZOO_CACHE) and check their sha256, or check them in place for a "
        "local hub.")
    parser.add_argument("name", help="registered model name")
    parser.add_argument("--weights", required=True, metavar="TAG",
                        help="weights tag, such as 'digits'")
    parser.add_argument("--hub", help="hub location (default: ZOO_HUB, "
                        "else the repository's hub)")
    parser.add_argument("--serving-base", metavar="BASE",
                        help="also extract the SavedModel to "
                        "BASE/NAME/VERSION for TF Serving")
    parser.add_argument("--version", type=int,
                        help="version for --serving-base (default: next "
                        "free)")


def _run_download(args):
    from zoo import hub

    paths = hub.download(args.name, args.weights, hub=args.hub)
    for kind, path in sorted(paths.items()):
        print(f"{kind}: {path}")
    if args.serving_base:
        target = hub.extract_saved_model(args.name, args.weights,
                                         args.serving_base, hub=args.hub,
                                         version=args.version)
        from zoo import export

        # Keep TF Serving's model config in step, as `zoo export` does.
        config = export.update_model_config(args.serving_base)
        print(f"saved_model: {target}")
        print(f"model config: {config}")
    return 0


def _add_cache(subparsers):
    parser = subparsers.add_parser(
        "cache", help="list, verify or prune the download cache",
        description="list: cached artifacts; verify: check each against "
        "its sha256 (exit status 1 when one fails); prune: remove temporary "
        "files, failed and unlisted artifacts.")
    parser.add_argument("action", choices=["list", "verify", "prune"])
    parser.add_argument("--all", action="store_true",
                        help="prune: remove the whole cache folder")


def _run_cache(args):
    from zoo import hub

    if args.action == "prune":
        removed = hub.prune_cache(everything=args.all)
        for path in removed:
            print(f"removed: {path}")
        print(f"{len(removed)} removed from {hub.cache_dir()}")
        return 0
    rows = hub.verify_cache() if args.action == "verify" else \
        hub.cache_entries()
    for row in rows:
        status = ""
        if args.action == "verify":
            status = "ok      " if row["ok"] else "FAILED  "
        print(f"{status}{row['model']}:{row['tag']} {row['kind']} "
              f"{row['size']} bytes  {row['path']}  (hub {row['hub']})")
        if args.action == "verify" and not row["ok"]:
            print(f"        {row['error']} It is downloaded again on next "
                  "use; `zoo cache prune` removes it now.")
    print(f"{len(rows)} cached artifacts in {hub.cache_dir()}")
    failed = [row for row in rows if not row.get("ok", True)]
    return 1 if failed else 0


def _add_prefetch(subparsers):
    parser = subparsers.add_parser(
        "prefetch", help="copy pretrained weights into a portable hub",
        description="Copy chosen artifacts and their index entries into "
        "a folder that works as ZOO_HUB on a machine with no network.")
    parser.add_argument("selections", nargs="+", metavar="NAME[:TAG]",
                        help="models (every tag) or model:tag pairs")
    parser.add_argument("--to", required=True, metavar="DIR",
                        help="folder to write (an existing index there is "
                        "extended)")
    parser.add_argument("--hub", help="hub to copy from (default: ZOO_HUB, "
                        "else the repository's hub)")


def _run_prefetch(args):
    from zoo import hub

    copied = hub.prefetch(args.selections, args.to, hub=args.hub)
    print(f"copied {', '.join(copied)} to {args.to}")
    print(f"use it with: ZOO_HUB={os.path.abspath(args.to)}")
    return 0


def _metrics_line(metrics):
    return ", ".join(f"{k}={v:.4f}" for k, v in sorted(metrics.items()))


def _add_hub(subparsers):
    parser = subparsers.add_parser(
        "hub", help="list a hub, or rebuild the repository's hub",
        description="list: the entries of a hub index with their metrics; "
        "rebuild: train every row of zoo/pretrained/recipes.json from "
        "scratch and publish it.")
    parser.add_argument("action", choices=["list", "rebuild"])
    parser.add_argument("--hub", help="hub location (list default: "
                        "ZOO_HUB, else the repository's hub; rebuild "
                        "default: the repository's hub folder)")
    parser.add_argument("--only", action="append", metavar="NAME[:TAG]",
                        help="rebuild: only these rows, repeatable")
    parser.add_argument("--runs-root", metavar="DIR",
                        help="rebuild: keep the run folders here (default: "
                        "a temporary folder)")


def _run_hub(args):
    from zoo import hub

    if args.action == "rebuild":
        _quiet_tensorflow()
        for name, tag, entry in hub.rebuild(hub=args.hub, only=args.only,
                                            runs_root=args.runs_root):
            print(f"published {name}:{tag}: "
                  f"{_metrics_line(entry['metrics'])}")
        return 0
    index = hub.read_index(args.hub)
    for name, tags in sorted(index["models"].items()):
        for tag, entry in sorted(tags.items()):
            print(f"{name}:{tag}  {entry['dataset']}/{entry['split']}  "
                  f"{_metrics_line(entry['metrics'])}  [{entry['license']}]")
            print(f"    {entry['command']}")
    return 0


# --- experiment -------------------------------------------------------------

def _add_experiment(subparsers):
    from zoo import experiments
    from zoo.hopfield_experiments import EXPERIMENTS

    parser = subparsers.add_parser(
        "experiment", help="run an experiment and write its figure",
        description="Run a named experiment, write its figure to a PNG and "
        "print its measured numbers as JSON.")
    parser.add_argument("experiment",
                        choices=EXPERIMENTS + experiments.EXPERIMENTS,
                        help="experiment name")
    parser.add_argument("--out", required=True, metavar="PNG",
                        help="path of the PNG figure to write")
    parser.add_argument("--seed", type=int, default=0,
                        help="seed of the experiment (default: 0)")


def _run_experiment(args):
    _quiet_tensorflow()
    from zoo import experiments
    from zoo.hopfield_experiments import run_experiment

    if args.experiment in experiments.EXPERIMENTS:
        run_experiment = experiments.run_experiment
    results = run_experiment(args.experiment, args.out, seed=args.seed)
    print(json.dumps(results))
    print(f"figure: {args.out}")
    return 0


# --- augment and fewshot ----------------------------------------------------

def _add_augment(subparsers):
    parser = subparsers.add_parser(
        "augment", help="write a grid of augmented samples of a data set",
        description="Augment examples of a data set with an augmentation "
        "spec and write a PNG: originals in the first row, one augmented "
        "copy per further row (time series: one panel per example).")
    parser.add_argument("dataset", metavar="NAME",
                        help="data set name, such as digits or sunspots")
    parser.add_argument("--augment", required=True, metavar="SPEC",
                        help="augmentation spec, such as "
                        "rotate:15,translate:0.1,noise:0.05")
    parser.add_argument("--out", required=True, metavar="PNG",
                        help="PNG file to write")
    parser.add_argument("--count", type=int, default=8,
                        help="examples to show (default: 8)")
    parser.add_argument("--variants", type=int, default=3,
                        help="augmented copies per example (default: 3)")
    parser.add_argument("--seed", type=int, default=0,
                        help="seed of the first copy (default: 0)")


def _run_augment(args):
    if args.count < 1 or args.variants < 1:
        raise CommandError(
            "--count and --variants must be positive integers. Received: "
            f"--count {args.count} --variants {args.variants}"
        )
    _quiet_tensorflow()
    from training import augment
    from zoo import datasets

    augment.parse_spec(args.augment)
    bundle = datasets.load(args.dataset)
    examples = bundle.train.x[:args.count]
    augment.save_preview(examples, args.augment, args.out, seed=args.seed,
                         variants=args.variants)
    print(f"wrote {args.out}: {len(examples)} examples of {args.dataset} "
          f"and {args.variants} augmented copies each ({args.augment})")
    return 0


def _add_fewshot(subparsers):
    parser = subparsers.add_parser(
        "fewshot", help="few-shot accuracy on digits unseen in training",
        description="Train the CNN on digits 0-4 only, freeze it at its "
        "`embedding` layer and classify digits 5-9 in N-way K-shot "
        "prototypical episodes. Prints the mean accuracy with its 95% "
        "interval, and the raw-pixel baseline.")
    parser.add_argument("--pretext", choices=("d4", "none"), default="d4",
                        help="training labels: digit and D_4 element (d4) "
                        "or digit only (none) (default: d4)")
    parser.add_argument("--epochs", type=int, default=10,
                        help="maximum training epochs (default: 10)")
    parser.add_argument("--ways", type=int, default=5,
                        help="classes per episode (default: 5)")
    parser.add_argument("--shots", type=int, default=5,
                        help="support examples per class (default: 5)")
    parser.add_argument("--queries", type=int, default=15,
                        help="query examples per class (default: 15)")
    parser.add_argument("--episodes", type=int, default=200,
                        help="number of episodes (default: 200)")
    parser.add_argument("--seed", type=int, default=0,
                        help="seed of weights and episodes (default: 0)")
    parser.add_argument("--json", action="store_true",
                        help="print the results as JSON")


def _run_fewshot(args):
    _quiet_tensorflow()
    from training import transfer

    results = transfer.fewshot_digits(
        pretext=args.pretext, epochs=args.epochs, n_way=args.ways,
        k_shot=args.shots, n_query=args.queries, episodes=args.episodes,
        seed=args.seed)
    if args.json:
        print(json.dumps(results, indent=2))
        return 0
    setting = (f"{args.ways}-way {args.shots}-shot, {args.episodes} "
               f"episodes, digits {results['novel_classes']} unseen")
    print(f"few-shot digits ({setting})")
    for key, label in (("embedding", f"CNN embedding (pretext "
                                     f"{args.pretext})"),
                       ("pixels", "raw pixels")):
        outcome = results[key]
        print(f"  {label}: mean accuracy {outcome['mean_accuracy']:.3f} "
              f"± {outcome['ci95']:.3f} (chance {1 / args.ways:.2f})")
    return 0


# --- entry point ------------------------------------------------------------

COMMANDS = ["list", "info", "train", "export", "predict", "publish",
            "download", "cache", "prefetch", "hub", "export-matrix",
            "experiment", "augment", "fewshot"]


def build_parser():
    parser = argparse.ArgumentParser(
        prog="zoo", description="Keras 3 model zoo: list, train, export, "
        "serve and download models.")
    parser.add_argument("-v", "--verbose", action="store_true",
                        help="log debug messages")
    subparsers = parser.add_subparsers(dest="command", metavar="COMMAND")
    subparsers.required = True
    module = sys.modules[__name__]
    for command in COMMANDS:
        getattr(module, f"_add_{command.replace('-', '_')}")(subparsers)
    return parser


def main(argv=None):
    parser = build_parser()
    args = parser.parse_args(argv)
    logging.basicConfig(
        level=logging.DEBUG if args.verbose else logging.INFO,
        format="%(message)s", stream=sys.stderr,
    )
    for noisy in ("tensorflow", "absl", "h5py", "matplotlib"):
        logging.getLogger(noisy).setLevel(logging.WARNING)
    run = getattr(sys.modules[__name__],
                  f"_run_{args.command.replace('-', '_')}")
    try:
        return run(args)
    except (CommandError, ValueError, KeyError, FileNotFoundError) as error:
        message = error.args[0] if isinstance(error, KeyError) and \
            error.args else error
        print(f"zoo {args.command}: error: {message}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print(f"zoo {args.command}: interrupted", file=sys.stderr)
        return 130


if __name__ == "__main__":
    sys.exit(main())
