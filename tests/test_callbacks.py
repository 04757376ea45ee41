"""Tests of the shared callbacks, each through a real `fit`.

The resume test kills a real `zoo train` process with SIGKILL in the middle
of training and runs the same command again.
"""

import csv
import json
import math
import os
import re
import signal
import subprocess
import sys
import time

import keras
import numpy as np
import pytest

from tests.conftest import REPO_ROOT
from training import callbacks as shared


def _data(count=64, seed=0):
    rng = np.random.default_rng(seed)
    x = rng.normal(size=(count, 4)).astype("float32")
    y = (x @ np.array([1.0, -2.0, 0.5, 0.0], "float32"))[:, None]
    return x, y


def _model(learning_rate=0.01):
    keras.utils.set_random_seed(0)
    model = keras.Sequential([
        keras.Input((4,)),
        keras.layers.Dense(8, activation="relu"),
        keras.layers.Dense(1),
    ])
    model.compile(keras.optimizers.Adam(learning_rate), "mse")
    return model


def _read_csv(path):
    with open(path) as handle:
        return list(csv.DictReader(handle))


# --- resume ---------------------------------------------------------------

def test_backup_restores_optimizer_state(tmp_path):
    x, y = _data()
    backup = str(tmp_path / "backup")
    first = _model()
    first.fit(x, y, batch_size=16, epochs=3, verbose=0, callbacks=[
        shared.ResumableBackup(backup, delete_on_end=False)])
    with open(os.path.join(backup, "state.json")) as handle:
        state = json.load(handle)

    second = _model()
    restore = shared.ResumableBackup(backup, delete_on_end=False)
    # Every epoch is done, so `fit` only restores and runs no epoch.
    second.fit(x, y, batch_size=16, epochs=3, verbose=0, callbacks=[restore])

    assert state["epoch"] == 3
    assert state["optimizer_iterations"] == 12
    assert restore.restored_epoch == 3
    assert int(second.optimizer.iterations.numpy()) == 12
    for saved, restored in zip(first.optimizer.variables,
                               second.optimizer.variables):
        np.testing.assert_array_equal(np.asarray(restored),
                                      np.asarray(saved))
    for saved, restored in zip(first.weights, second.weights):
        np.testing.assert_array_equal(np.asarray(restored),
                                      np.asarray(saved))


def test_backup_restores_callback_state(tmp_path):
    x, y = _data()
    run = tmp_path / "run"
    run.mkdir()
    first = _model()
    callbacks = shared.default_callbacks(str(run), monitor="loss",
                                         patience=50, tensorboard=False,
                                         progress=False)
    callbacks[-1].delete_on_end = False
    first.fit(x, y, batch_size=16, epochs=4, verbose=0, callbacks=callbacks)
    stopper = callbacks[1]

    second = _model()
    again = shared.default_callbacks(str(run), monitor="loss", patience=50,
                                     tensorboard=False, progress=False)
    history = second.fit(x, y, batch_size=16, epochs=6, verbose=0,
                         callbacks=again)
    rows = _read_csv(run / "history.csv")

    assert again[1].best_epoch >= stopper.best_epoch
    assert [int(r["epoch"]) for r in rows] == list(range(6))
    assert len(history.history["loss"]) == 6
    assert int(second.optimizer.iterations.numpy()) == 6 * 4
    assert not os.path.exists(run / "backup")


def _train_command(run_dir, epochs):
    return [
        sys.executable, "-m", "zoo", "train", "cnn", "--epochs", str(epochs),
        "--set", "filters=[4]", "--set", "dense_units=8",
        "--set", "convs_per_block=1", "--batch-size", "128",
        "--run-dir", str(run_dir),
        "--no-export",
    ]


@pytest.mark.slow
def test_sigkill_then_rerun_resumes(tmp_path):
    run_dir = tmp_path / "run"
    epochs = 8
    command = _train_command(run_dir, epochs)
    env = {**os.environ, "TF_CPP_MIN_LOG_LEVEL": "2"}
    state_path = run_dir / "backup" / "state.json"

    process = subprocess.Popen(command, cwd=REPO_ROOT, env=env,
                               stdout=subprocess.DEVNULL,
                               stderr=subprocess.DEVNULL)
    saved = None
    deadline = time.monotonic() + 120
    while time.monotonic() < deadline and process.poll() is None:
        try:
            with open(state_path) as handle:
                saved = json.load(handle)
        except (OSError, json.JSONDecodeError):
            saved = None
        if saved and saved["epoch"] >= 2:
            break
        time.sleep(0.02)
    process.send_signal(signal.SIGKILL)
    process.wait()
    with open(state_path) as handle:
        saved = json.load(handle)
    assert process.returncode == -signal.SIGKILL
    assert not (run_dir / "metrics.json").exists()
    assert saved["epoch"] < epochs

    rerun = subprocess.run(command, cwd=REPO_ROOT, env=env,
                           capture_output=True, text=True, timeout=300)
    assert rerun.returncode == 0, rerun.stderr[-3000:]

    resumed = re.search(r"Resumed from .*: (\d+) epoch\(s\) done, "
                        r"optimizer step (\d+)", rerun.stderr)
    assert resumed, rerun.stderr[-3000:]
    assert int(resumed.group(1)) == saved["epoch"]
    assert int(resumed.group(2)) == saved["optimizer_iterations"]
    first_epoch = re.search(r"^epoch (\d+)/(\d+) ", rerun.stderr,
                            re.MULTILINE)
    assert first_epoch, rerun.stderr[-3000:]
    assert int(first_epoch.group(1)) == saved["epoch"] + 1

    with open(run_dir / "metrics.json") as handle:
        metrics = json.load(handle)
    rows = _read_csv(run_dir / "history.csv")
    epochs_run = metrics["epochs_run"]
    assert [int(r["epoch"]) for r in rows] == list(range(epochs_run))
    assert all(math.isfinite(float(r["loss"])) for r in rows)
    ended = re.search(r"Training ended after (\d+) epoch\(s\) at optimizer "
                      r"step (\d+)", rerun.stderr)
    assert ended, rerun.stderr[-3000:]
    steps_per_epoch = saved["optimizer_iterations"] // saved["epoch"]
    assert int(ended.group(1)) == epochs_run
    assert int(ended.group(2)) == epochs_run * steps_per_epoch
    # Early stopping (patience 10) may end a run before `epochs`.
    assert epochs_run == epochs or epochs_run > saved["epoch"]
    assert not (run_dir / "backup").exists()


def test_rerun_without_run_dir_finds_run(tmp_path):
    config = {"model": "cnn", "settings": {"epochs": 3}, "command": "a"}
    unfinished = tmp_path / "cnn" / "20260101-000000"
    finished = tmp_path / "cnn" / "20260101-000001"
    other = tmp_path / "cnn" / "20260101-000002"
    for folder, saved in ((unfinished, config), (finished, config),
                          (other, {**config, "settings": {"epochs": 4}})):
        folder.mkdir(parents=True)
        (folder / "config.json").write_text(json.dumps(
            {**saved, "command": "b"}))
    (finished / "metrics.json").write_text("{}")

    found = shared.find_unfinished_run(str(tmp_path), "cnn", config)

    assert found == str(unfinished)


def test_run_owned_by_live_process_is_skipped(tmp_path):
    config = {"model": "cnn"}
    folder = tmp_path / "cnn" / "run"
    folder.mkdir(parents=True)
    (folder / "config.json").write_text(json.dumps(config))
    sleeper = subprocess.Popen([sys.executable, "-c",
                                "import time; time.sleep(30)"])
    try:
        (folder / shared.LOCK_FILE).write_text(str(sleeper.pid))
        skipped = shared.find_unfinished_run(str(tmp_path), "cnn", config)
        with pytest.raises(ValueError, match="in use by another"):
            shared.claim_run_dir(str(folder))
    finally:
        sleeper.kill()
        sleeper.wait()
    found = shared.find_unfinished_run(str(tmp_path), "cnn", config)

    assert skipped is None
    assert found == str(folder)


# --- checkpoints, early stopping, schedules, NaN --------------------------

def test_early_stopping_restores_best_and_saves_it(tmp_path):
    x, y = _data()
    model = _model(learning_rate=0.05)
    x_val, y_val = _data(32, seed=1)
    # A validation target that gets worse as the fit improves stops early.
    callbacks = shared.default_callbacks(str(tmp_path), monitor="val_loss",
                                         patience=2, tensorboard=False,
                                         progress=False)
    history = model.fit(x, y, validation_data=(x_val, -y_val), epochs=30,
                        batch_size=16, verbose=0, callbacks=callbacks)
    losses = history.history["val_loss"]
    best = keras.saving.load_model(tmp_path / "best.keras")

    assert len(losses) < 30
    assert np.argmin(losses) == len(losses) - 3
    restored = model.evaluate(x_val, -y_val, verbose=0)
    np.testing.assert_allclose(restored, min(losses), rtol=1e-4)
    np.testing.assert_allclose(best.evaluate(x_val, -y_val, verbose=0),
                               min(losses), rtol=1e-4)


def test_warmup_cosine_schedule_rates(tmp_path):
    x, y = _data(64)
    model = _model(learning_rate=0.1)
    schedule = shared.WarmupCosineDecay(0.1, epochs=4, warmup_epochs=1,
                                        min_learning_rate=0.001)
    seen = []
    recorder = keras.callbacks.LambdaCallback(
        on_train_batch_end=lambda batch, logs: seen.append(float(
            np.asarray(model.optimizer.learning_rate))))
    model.fit(x, y, batch_size=16, epochs=4, verbose=0,
              callbacks=[schedule, recorder])

    assert len(seen) == 16
    np.testing.assert_allclose(seen[:4], [0.025, 0.05, 0.075, 0.1],
                               rtol=1e-5)
    assert all(a >= b for a, b in zip(seen[3:], seen[4:]))
    np.testing.assert_allclose(seen[-1], schedule.rate(15), rtol=1e-5)
    assert seen[-1] < 0.01


def test_reduce_on_plateau_schedule(tmp_path):
    x, y = _data()
    model = _model(learning_rate=0.01)
    callbacks = shared.default_callbacks(
        str(tmp_path), monitor="val_loss", patience=3, schedule="plateau",
        tensorboard=False, progress=False, resume=False)
    # A validation target that gets worse as the fit improves: a plateau.
    x_val, y_val = _data(32, seed=1)
    model.fit(x, y, validation_data=(x_val, -y_val), epochs=3,
              batch_size=16, verbose=0, callbacks=callbacks)

    assert float(np.asarray(model.optimizer.learning_rate)) < 0.01


def test_stop_on_nan(tmp_path):
    x, y = _data()
    y[5] = np.nan
    model = _model()
    history = model.fit(x, y, epochs=5, batch_size=16, verbose=0,
                        callbacks=shared.default_callbacks(
                            str(tmp_path), monitor="loss", tensorboard=False,
                            progress=False, resume=False))

    assert len(history.history["loss"]) == 1


def test_unknown_schedule_is_rejected(tmp_path):
    with pytest.raises(ValueError, match="Received: 'step'"):
        shared.default_callbacks(str(tmp_path), schedule="step")


# --- logs -----------------------------------------------------------------

def test_logs_csv_tensorboard_and_curves(tmp_path):
    x, y = _data()
    model = _model()
    model.fit(x, y, validation_split=0.25, epochs=3, batch_size=16,
              verbose=0, callbacks=shared.default_callbacks(
                  str(tmp_path), progress=False))
    rows = _read_csv(tmp_path / "history.csv")
    events = [name for _, _, names in os.walk(tmp_path / "tensorboard")
              for name in names if name.startswith("events.out")]

    assert [int(r["epoch"]) for r in rows] == [0, 1, 2]
    assert {"loss", "val_loss"} <= set(rows[0])
    assert events
    with open(tmp_path / "curves.png", "rb") as handle:
        assert handle.read(8) == b"\x89PNG\r\n\x1a\n"


def test_epoch_log_lines_when_not_a_terminal(caplog):
    x, y = _data()
    model = _model()
    logger = shared.progress_callback(stream=open(os.devnull, "w"))
    with caplog.at_level("INFO", logger="training.callbacks"):
        model.fit(x, y, epochs=2, batch_size=16, verbose=0,
                  callbacks=[logger])
    lines = [r.getMessage() for r in caplog.records]

    assert isinstance(logger, shared.EpochLog)
    assert len(lines) == 2
    assert re.match(r"epoch 1/2 - \d+\.\ds - loss: \S+", lines[0])


def test_progress_bar_on_a_terminal(capsys):
    class Terminal:
        def isatty(self):
            return True

    x, y = _data()
    model = _model()
    bar = shared.progress_callback(stream=Terminal())
    model.fit(x, y, epochs=2, batch_size=16, verbose=0, callbacks=[bar])
    output = capsys.readouterr().out

    assert isinstance(bar, shared.ProgressBar)
    assert "Epoch 2/2" in output
    assert "4/4" in output


# --- image grid -----------------------------------------------------------

def test_image_grid_every_n_epochs(tmp_path):
    x, y = _data(16)
    model = keras.Sequential([keras.Input((4,)),
                              keras.layers.Dense(36, activation="sigmoid"),
                              keras.layers.Reshape((6, 6, 1))])
    model.compile("adam", "mse")
    fixed = x[:6]
    calls = []

    def make_images(trained):
        calls.append(1)
        return trained(fixed, training=False)

    grid = shared.ImageGrid(str(tmp_path / "samples-{epoch:02d}.png"),
                            make_images, every_n_epochs=2)
    model.fit(x, np.zeros((16, 6, 6, 1), "float32"), epochs=5, verbose=0,
              callbacks=[grid])

    assert sorted(os.listdir(tmp_path)) == [
        "samples-02.png", "samples-04.png", "samples-05.png"]
    assert len(calls) == 3
    import matplotlib.image

    picture = matplotlib.image.imread(tmp_path / "samples-04.png")
    assert picture.ndim == 3
    assert picture.shape[0] > 50


def test_image_grid_rejects_bad_arguments(tmp_path):
    with pytest.raises(ValueError, match="every_n_epochs"):
        shared.ImageGrid("a.png", lambda m: None, every_n_epochs=0)
    with pytest.raises(ValueError, match=r"shape=\(2, 3\)"):
        shared.save_image_grid(np.zeros((2, 3)), str(tmp_path / "a.png"))
