"""Double descent in the width of fully trained dense networks."""

import pytest

from zoo.experiments import trained_width


@pytest.fixture(scope="module")
def sweep():
    return trained_width.run_trained_sweep(widths=(8, 12, 14, 16, 1000))


def test_peak_near_threshold(sweep):
    summary = sweep.summary()
    assert sweep.threshold == 1000
    assert 0.8 * 1000 <= summary["peak_parameters"] <= 1.25 * 1000


def test_wide_network_beats_narrow(sweep):
    summary = sweep.summary()
    assert summary["largest_test_squared"] < \
        summary["best_under_test_squared"]
    assert summary["peak_test_squared"] > \
        1.3 * summary["best_under_test_squared"]


def test_wide_network_interpolates(sweep):
    assert sweep.train_squared[-1] < 1e-4
    assert sweep.train_squared[0] > 1e-2


def test_rejects_bad_widths():
    with pytest.raises(ValueError, match="widths=\\(0,\\)"):
        trained_width.run_trained_sweep(widths=(0,))


def test_figure_and_numbers_written(tmp_path):
    path = tmp_path / "ddt.png"
    trained_width.run(str(path), widths=(4, 2000), steps=200)
    assert path.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    assert (tmp_path / "ddt.json").is_file()
