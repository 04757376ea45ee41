"""Tests of the finite groups, their actions and the invariance wrapper."""

import itertools
import math

import keras
import numpy as np
import pytest

from training import groups

GROUPS = {"C4": 4, "D3": 6, "D4": 8, "S3": 6, "S4": 24}


@pytest.mark.parametrize("name", sorted(GROUPS))
def test_group_axioms(name):
    group = groups.group_from_name(name)
    elements = set(group)
    identity = group.identity

    assert len(group) == GROUPS[name]
    for g, h in itertools.product(group, repeat=2):
        assert groups.compose(g, h) in elements
    for g, h, k in itertools.product(group, repeat=3):
        assert groups.compose(groups.compose(g, h), k) == \
            groups.compose(g, groups.compose(h, k))
    for g in group:
        assert groups.compose(identity, g) == g
        assert groups.compose(g, identity) == g
        assert groups.inverse(g) in elements
        assert groups.compose(g, groups.inverse(g)) == identity
        assert groups.compose(groups.inverse(g), g) == identity


def test_composition_applies_right_factor_first():
    g, h = (1, 2, 0), (1, 0, 2)

    assert groups.compose(g, h) == tuple(g[h[i]] for i in range(3))
    assert groups.compose(g, h) == (2, 1, 0)


def test_d3_cayley_table_is_a_latin_square():
    d3 = groups.dihedral(3)
    table = d3.cayley_table()
    text = d3.cayley_table_text()

    assert d3.names == ("id", "R", "R²", "F", "FR", "FR²")
    for row in table:
        assert sorted(row) == list(range(6))
    for column in zip(*table):
        assert sorted(column) == list(range(6))
    lines = text.splitlines()
    assert lines[0].split("|")[1].split() == list(d3.names)
    # Row R²: R²·F = F·R⁻² = FR, because F·R·F = R⁻¹.
    assert lines[4].split("|")[1].split() == ["R²", "id", "R", "FR",
                                              "FR²", "F"]


def test_dihedral_relations_and_names():
    d4 = groups.dihedral(4)
    rotation, flip = d4["R"], d4["F"]

    assert d4["FR2"] == groups.compose(flip, groups.compose(rotation,
                                                             rotation))
    assert groups.compose(flip, groups.compose(rotation, flip)) == \
        groups.inverse(rotation)
    assert d4.name_of(groups.compose(rotation, flip)) == "FR³"
    with pytest.raises(KeyError, match="no element named 'G'"):
        d4["G"]


def test_symmetric_group_names_in_cycle_notation():
    s3 = groups.symmetric(3)

    assert s3.names[0] == "id"
    assert "(0 1 2)" in s3.names
    assert len(set(s3.names)) == math.factorial(3)


def test_image_action_is_a_homomorphism():
    d4 = groups.dihedral(4)
    images = np.random.default_rng(0).random((2, 5, 5, 3)).astype("float32")

    for g, h in itertools.product(d4, repeat=2):
        together = groups.act_on_images(groups.compose(g, h), images)
        in_turn = groups.act_on_images(g, groups.act_on_images(h, images))
        np.testing.assert_array_equal(np.asarray(together),
                                      np.asarray(in_turn))


def test_image_action_matches_corner_permutation():
    d4 = groups.dihedral(4)
    image = np.zeros((4, 4, 1), "float32")
    # Corners numbered counterclockwise on screen: 0 top-left,
    # 1 bottom-left, 2 bottom-right, 3 top-right.
    corners = [(0, 0), (3, 0), (3, 3), (0, 3)]
    for label, (row, col) in enumerate(corners):
        image[row, col, 0] = label + 1

    np.testing.assert_array_equal(
        np.asarray(groups.act_on_images(d4["R"], image)),
        np.rot90(image, 1, axes=(0, 1)))
    for g in d4:
        moved = np.asarray(groups.act_on_images(g, image))
        for label, (row, col) in enumerate(corners):
            target_row, target_col = corners[g[label]]
            assert moved[target_row, target_col, 0] == label + 1


def test_set_action_is_a_homomorphism():
    s4 = groups.symmetric(4)
    sets = np.random.default_rng(1).random((3, 4, 2)).astype("float32")

    for g, h in itertools.product(s4, repeat=2):
        together = groups.act_on_sets(groups.compose(g, h), sets)
        in_turn = groups.act_on_sets(g, groups.act_on_sets(h, sets))
        np.testing.assert_array_equal(np.asarray(together),
                                      np.asarray(in_turn))
    moved = np.asarray(groups.act_on_sets((1, 2, 3, 0), sets))
    np.testing.assert_array_equal(moved[:, 1], sets[:, 0])


def _cnn():
    import zoo

    keras.utils.set_random_seed(0)
    return zoo.get_model("cnn", filters=[4], dense_units=8,
                         convs_per_block=1)


def test_orbit_average_is_d4_invariant():
    model = _cnn()
    invariant = groups.OrbitAverage(model, group="D4")
    images = np.random.default_rng(2).random((4, 8, 8, 1)).astype("float32")
    reference = np.asarray(invariant(images))
    plain = np.asarray(model(images))
    turned = np.asarray(model(np.asarray(groups.act_on_images(
        groups.dihedral(4)["R"], images))))

    assert np.abs(turned - plain).max() > 1e-3
    for g in groups.dihedral(4):
        moved = np.asarray(groups.act_on_images(g, images))
        output = np.asarray(invariant(moved))
        assert np.abs(output - reference).max() < 1e-5


def test_orbit_average_round_trip(tmp_path):
    invariant = groups.OrbitAverage(_cnn(), group="C4")
    images = np.random.default_rng(3).random((2, 8, 8, 1)).astype("float32")
    expected = np.asarray(invariant(images))
    path = str(tmp_path / "invariant.keras")
    invariant.save(path)
    loaded = keras.saving.load_model(path)

    assert loaded.get_config()["group"] == "C4"
    np.testing.assert_allclose(np.asarray(loaded(images)), expected,
                               atol=1e-6)


def test_orbit_average_on_sets():
    keras.utils.set_random_seed(0)
    inputs = keras.Input((3, 2))
    hidden = keras.layers.Flatten()(inputs)
    model = keras.Model(inputs, keras.layers.Dense(2)(hidden))
    invariant = groups.OrbitAverage(model, group="S3", action="set")
    sets = np.random.default_rng(4).random((5, 3, 2)).astype("float32")
    reference = np.asarray(invariant(sets))

    for g in groups.symmetric(3):
        output = np.asarray(invariant(np.asarray(groups.act_on_sets(g,
                                                                    sets))))
        assert np.abs(output - reference).max() < 1e-5


def test_orbit_augment_repeats_labels():
    d4 = groups.dihedral(4)
    images = np.random.default_rng(5).random((3, 6, 6, 1)).astype("float32")
    labels = np.array([0, 1, 2])
    x, y = groups.orbit_augment(d4, images, labels)

    assert tuple(x.shape) == (24, 6, 6, 1)
    np.testing.assert_array_equal(np.asarray(y), np.tile(labels, 8))
    np.testing.assert_array_equal(
        np.asarray(x)[3:6], np.rot90(images, 1, axes=(1, 2)))


def test_invalid_groups_and_actions():
    with pytest.raises(ValueError, match="Received: 2"):
        groups.dihedral(2)
    with pytest.raises(ValueError, match="Unknown group 'Q8'"):
        groups.group_from_name("Q8")
    with pytest.raises(ValueError, match="not closed"):
        groups.PermutationGroup("bad", [(0, 1, 2), (1, 2, 0)])
    with pytest.raises(ValueError, match="square images"):
        groups.act_on_images(groups.dihedral(4)["R"],
                             np.zeros((1, 4, 5, 1)))
    with pytest.raises(ValueError, match="degree 4"):
        groups.OrbitAverage(_cnn(), group="D3")
