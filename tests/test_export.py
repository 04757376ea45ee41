"""TF Serving layout: versions, atomic folders, named signatures."""

import os

import pytest

import zoo
from zoo import export


@pytest.fixture(scope="module")
def tiny_cnn():
    return zoo.get_model("cnn", filters=[4], dense_units=8,
                         convs_per_block=1)


def test_versions_ignore_hidden_entries(tmp_path):
    for name in ("1", "3", ".tmp-4-abcd", ".DS_Store"):
        (tmp_path / name).mkdir()
    assert export.existing_versions(str(tmp_path)) == [1, 3]
    assert export.next_version(str(tmp_path)) == 4


@pytest.mark.parametrize("entry", ["latest", "0", "v2", "1.5", "\u00b2"])
def test_versions_reject_non_integer_entries(tmp_path, entry):
    (tmp_path / entry).mkdir()
    with pytest.raises(ValueError, match="positive integer") as caught:
        export.existing_versions(str(tmp_path))
    assert entry in str(caught.value)


def test_export_named_signature(tiny_cnn, tmp_path):
    result = export.export_saved_model(tiny_cnn, zoo.get_spec("cnn"),
                                       base_dir=str(tmp_path))
    assert result.version == 1
    assert result.signature_inputs == {"images": ((None, 8, 8, 1),
                                                  "float32")}
    assert result.signature_outputs == ["probabilities"]
    assert os.listdir(tmp_path / "cnn") == ["1"]


def test_export_explicit_version_never_overwrites(tiny_cnn, tmp_path):
    spec = zoo.get_spec("cnn")
    export.export_saved_model(tiny_cnn, spec, base_dir=str(tmp_path),
                              version=7)
    with pytest.raises(ValueError, match="already exists"):
        export.export_saved_model(tiny_cnn, spec, base_dir=str(tmp_path),
                                  version=7)
    assert export.export_saved_model(
        tiny_cnn, spec, base_dir=str(tmp_path)).version == 8


@pytest.mark.parametrize("version", [0, -1, "2"])
def test_export_rejects_bad_version(tiny_cnn, tmp_path, version):
    with pytest.raises(ValueError, match="positive integer"):
        export.export_saved_model(tiny_cnn, zoo.get_spec("cnn"),
                                  base_dir=str(tmp_path), version=version)


def test_resolve_version_dir(tiny_cnn, tmp_path):
    spec = zoo.get_spec("cnn")
    export.export_saved_model(tiny_cnn, spec, base_dir=str(tmp_path))
    export.export_saved_model(tiny_cnn, spec, base_dir=str(tmp_path))
    base = str(tmp_path / "cnn")
    assert export.resolve_version_dir(base) == os.path.join(base, "2")
    with pytest.raises(ValueError, match="not found"):
        export.resolve_version_dir(str(tmp_path / "missing"))


def test_versions_reject_leading_zeros(tmp_path):
    (tmp_path / "007").mkdir()
    with pytest.raises(ValueError, match="leading zeros") as caught:
        export.existing_versions(str(tmp_path))
    assert "'7'" in str(caught.value)
