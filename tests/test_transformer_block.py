"""Tests of `TransformerBlock`, positional embeddings, `ApplyPaddingMask`.

Shapes are tiny; every check runs real Keras layers on the TF backend.
"""

import json
import math

import keras
import numpy as np
import pytest

from zoo.layers import (
    LearnedPositionalEmbedding,
    ApplyPaddingMask,
    SinusoidalPositionalEmbedding,
    TransformerBlock,
)

RNG = np.random.default_rng(0)


def _random(*shape):
    return RNG.normal(size=shape).astype("float32")


def _lengths_mask(lengths, steps):
    return (np.arange(steps)[None, :] < np.asarray(lengths)[:, None])


@pytest.mark.parametrize("hidden_dim,num_heads,intermediate_dim",
                         [(8, 2, 16), (12, 3, 20), (16, 4, 64), (6, 1, 5)])
def test_block_parameter_count(hidden_dim, num_heads, intermediate_dim):
    block = TransformerBlock(hidden_dim, num_heads,
                             intermediate_dim=intermediate_dim)
    block.build((None, None, hidden_dim))
    d, f = hidden_dim, intermediate_dim

    assert block.count_params() == 4 * d * d + 2 * d * f + 9 * d + f


def test_block_default_intermediate_dim():
    block = TransformerBlock(8, 2)

    assert block.intermediate_dim == 32


@pytest.mark.parametrize("kwargs,argument", [
    ({"hidden_dim": 10, "num_heads": 3}, "hidden_dim"),
    ({"hidden_dim": 0, "num_heads": 1}, "hidden_dim"),
    ({"hidden_dim": 8, "num_heads": 0}, "num_heads"),
    ({"hidden_dim": 8, "num_heads": 2, "intermediate_dim": -1},
     "intermediate_dim"),
    ({"hidden_dim": 8, "num_heads": 2, "dropout": 1.0}, "dropout"),
    ({"hidden_dim": 8, "num_heads": 2, "attention_dropout": -0.1},
     "attention_dropout"),
    ({"hidden_dim": 8, "num_heads": 2, "norm_position": "middle"},
     "norm_position"),
])
def test_block_rejects_invalid_arguments(kwargs, argument):
    with pytest.raises(ValueError, match=f"`{argument}`"):
        TransformerBlock(**kwargs)


def test_block_rejects_wrong_input_width():
    block = TransformerBlock(8, 2)

    with pytest.raises(ValueError, match="last axis is 8"):
        block(_random(2, 3, 6))


@pytest.mark.parametrize("norm_position", ["post", "pre"])
def test_block_is_permutation_equivariant(norm_position):
    block = TransformerBlock(16, 4, intermediate_dim=24,
                             norm_position=norm_position)
    x = _random(3, 7, 16)
    permutation = RNG.permutation(7)

    permuted_then_block = np.asarray(block(x[:, permutation]))
    block_then_permuted = np.asarray(block(x))[:, permutation]

    error = np.max(np.abs(permuted_then_block - block_then_permuted))
    assert error < 1e-5


def test_positional_embedding_breaks_equivariance():
    block = TransformerBlock(16, 4)
    positions = SinusoidalPositionalEmbedding()
    x = _random(2, 7, 16)
    permutation = np.roll(np.arange(7), 1)

    permuted = np.asarray(block(positions(x[:, permutation])))
    original = np.asarray(block(positions(x)))[:, permutation]

    assert np.max(np.abs(permuted - original)) > 1e-2


@pytest.mark.parametrize("norm_position", ["post", "pre"])
def test_block_padding_mask_matches_unpadded(norm_position):
    block = TransformerBlock(8, 2, intermediate_dim=16,
                             norm_position=norm_position)
    lengths = [6, 4, 1]
    x = _random(3, 6, 8)
    mask = _lengths_mask(lengths, 6)
    padded = np.where(mask[..., None], x, 99.0).astype("float32")

    outputs = np.asarray(block(padded, padding_mask=mask))

    for row, length in enumerate(lengths):
        alone = np.asarray(block(x[row:row + 1, :length]))[0]
        np.testing.assert_allclose(outputs[row, :length], alone, atol=1e-5)


def test_block_reads_keras_mask():
    block = TransformerBlock(8, 2)
    lengths = [5, 2]
    x = _random(2, 5, 8)
    mask = _lengths_mask(lengths, 5)

    from_argument = np.asarray(block(x, padding_mask=mask))
    from_keras_mask = np.asarray(block(x, mask=mask))

    np.testing.assert_allclose(from_keras_mask, from_argument, atol=1e-6)


def test_block_causal_mask_ignores_future_steps():
    block = TransformerBlock(8, 2, causal=True)
    x = _random(2, 6, 8)
    changed = x.copy()
    changed[:, 4:] = _random(2, 2, 8)

    original = np.asarray(block(x))
    after_change = np.asarray(block(changed))

    np.testing.assert_allclose(after_change[:, :4], original[:, :4],
                               atol=1e-5)
    assert np.max(np.abs(after_change[:, 4:] - original[:, 4:])) > 1e-3


def test_block_dropout_only_in_training():
    block = TransformerBlock(8, 2, dropout=0.5, attention_dropout=0.5)
    x = _random(2, 5, 8)

    first = np.asarray(block(x, training=False))
    second = np.asarray(block(x, training=False))
    trained = np.asarray(block(x, training=True))

    np.testing.assert_array_equal(first, second)
    assert np.max(np.abs(trained - first)) > 1e-3


def test_block_post_and_pre_norm_differ():
    x = _random(2, 5, 8)
    post = TransformerBlock(8, 2, norm_position="post")
    pre = TransformerBlock(8, 2, norm_position="pre")
    post(x)
    pre(x)
    pre.set_weights(post.get_weights())

    # Post-norm ends with a layer normalization, so each step has zero mean.
    post_output = np.asarray(post(x))
    pre_output = np.asarray(pre(x))

    np.testing.assert_allclose(post_output.mean(axis=-1), 0.0, atol=1e-5)
    assert np.max(np.abs(pre_output - post_output)) > 1e-3


@pytest.mark.parametrize("layer", [
    TransformerBlock(8, 2, intermediate_dim=12, dropout=0.1,
                     activation="gelu", norm_position="pre", causal=True),
    LearnedPositionalEmbedding(10),
    SinusoidalPositionalEmbedding(max_wavelength=500),
    TransformerBlock(4, 4),
], ids=["block", "learned", "sinusoidal", "block-defaults"])
def test_layer_config_round_trip(layer):
    x = _random(2, 5, layer.hidden_dim if hasattr(layer, "hidden_dim")
                else 8)
    expected = np.asarray(layer(x))
    config = json.loads(json.dumps(keras.saving.serialize_keras_object(
        layer)))
    rebuilt = keras.saving.deserialize_keras_object(config)
    rebuilt(x)
    rebuilt.set_weights(layer.get_weights())

    assert rebuilt.get_config() == layer.get_config()
    np.testing.assert_allclose(np.asarray(rebuilt(x)), expected, atol=1e-6)


def test_layers_keras_file_round_trip(tmp_path):
    # tests/test_sequence_models.py loads such files in a fresh process.
    sequence = keras.Input((None, 3), name="sequence")
    padding_mask = keras.Input((None,), dtype="int32", name="padding_mask")
    x = ApplyPaddingMask()([sequence, padding_mask])
    x = keras.layers.Dense(8)(x)
    x = LearnedPositionalEmbedding(6)(x)
    x = SinusoidalPositionalEmbedding()(x)
    x = TransformerBlock(8, 2, norm_position="pre")(x)
    x = keras.layers.GlobalAveragePooling1D()(x)
    model = keras.Model([sequence, padding_mask], x)
    inputs = [_random(2, 6, 3),
              _lengths_mask([6, 3], 6).astype("int32")]
    path = str(tmp_path / "model.keras")
    model.save(path)

    loaded = keras.saving.load_model(path, safe_mode=True)

    np.testing.assert_allclose(np.asarray(loaded(inputs)),
                               np.asarray(model(inputs)), atol=1e-6)


def test_sinusoidal_embedding_values():
    layer = SinusoidalPositionalEmbedding()
    zeros = np.zeros((1, 5, 6), dtype="float32")

    signal = np.asarray(layer(zeros))[0]

    for position in range(5):
        for pair in range(3):
            angle = position / 10000 ** (2 * pair / 6)
            assert math.isclose(signal[position, 2 * pair], math.sin(angle),
                                abs_tol=1e-5)
            assert math.isclose(signal[position, 2 * pair + 1],
                                math.cos(angle), abs_tol=1e-5)


def test_learned_embedding_adds_position_vectors():
    layer = LearnedPositionalEmbedding(7)
    x = _random(2, 4, 3)

    output = np.asarray(layer(x))
    table = np.asarray(layer.embeddings)

    np.testing.assert_allclose(output, x + table[None, :4], atol=1e-6)
    assert layer.count_params() == 7 * 3


def test_learned_embedding_rejects_long_sequences():
    layer = LearnedPositionalEmbedding(4)

    with pytest.raises(ValueError, match="max_length=4"):
        layer(_random(1, 5, 3))


@pytest.mark.parametrize("kwargs,layer_class", [
    ({"max_length": 0}, LearnedPositionalEmbedding),
    ({"max_length": 2.5}, LearnedPositionalEmbedding),
    ({"max_wavelength": 1}, SinusoidalPositionalEmbedding),
])
def test_positional_rejects_invalid_arguments(kwargs, layer_class):
    argument = next(iter(kwargs))

    with pytest.raises(ValueError, match=f"`{argument}`"):
        layer_class(**kwargs)


def test_padding_mask_zeroes_and_attaches_mask():
    sequence = _random(2, 4, 3)
    mask = _lengths_mask([4, 2], 4).astype("int32")
    layer = ApplyPaddingMask()

    output = layer([sequence, mask])
    keras_mask = np.asarray(layer.compute_mask([sequence, mask]))

    np.testing.assert_array_equal(np.asarray(output)[1, 2:], 0.0)
    np.testing.assert_allclose(np.asarray(output)[0], sequence[0])
    np.testing.assert_array_equal(keras_mask, mask.astype(bool))


def test_positional_layers_pass_mask_through():
    sequence = keras.Input((None, 4))
    padding_mask = keras.Input((None,), dtype="int32")
    x = ApplyPaddingMask()([sequence, padding_mask])
    learned = LearnedPositionalEmbedding(5)(x)
    sinusoidal = SinusoidalPositionalEmbedding()(x)

    assert learned._keras_mask is not None
    assert sinusoidal._keras_mask is not None
