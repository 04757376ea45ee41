"""The classical binary Hopfield network and the modern update in NumPy.

The classical network (Hopfield 1982) stores +1/-1 patterns in Hebbian
weights `W = P^T P / d` with a zero diagonal and retrieves with sign
updates, which never increase the energy `E(s) = -0.5 s^T W s`. It keeps
about `0.14 d` random patterns of dimension `d` (Amit, Gutfreund,
Sompolinsky 1985). The modern (continuous) network of Ramsauer et al.
(2020) retrieves with `xi <- P^T softmax(beta P xi)` and stores a number
of patterns exponential in `d`. Both run here in float64 NumPy so the
capacity experiment of `zoo.hopfield_experiments` runs thousands of
patterns in seconds; the Keras form of the modern update is
`zoo.layers.hopfield.Hopfield`.

References:
    Hopfield (1982). Neural networks and physical systems with emergent
    collective computational abilities. https://doi.org/10.1073/pnas.79.8.2554
    Ramsauer et al. (2020). Hopfield Networks is All You Need.
    https://arxiv.org/abs/2008.02217
"""

import logging

import numpy as np

logger = logging.getLogger(__name__)

# Storage capacity of the classical network as a fraction of d (Amit,
# Gutfreund, Sompolinsky 1985), beyond which retrieval states vanish.
CLASSICAL_CAPACITY = 0.138


def random_patterns(count, dim, seed=0):
    """Return `count` random +1/-1 patterns of size `dim` (float64).

    Args:
        count: Number of patterns.
        dim: Size of each pattern.
        seed: Seed of the generator. Defaults to 0.
    """
    if count < 1 or dim < 1:
        raise ValueError(
            "`count` and `dim` must be positive integers. Received: "
            f"count={count!r}, dim={dim!r}"
        )
    rng = np.random.default_rng(seed)
    return rng.choice(np.array([-1.0, 1.0]), size=(count, dim))


def _check_patterns(patterns):
    patterns = np.asarray(patterns, dtype="float64")
    if patterns.ndim != 2 or not len(patterns):
        raise ValueError(
            "`patterns` must be a non-empty (count, dim) array. Received: "
            f"shape {patterns.shape}"
        )
    return patterns


class ClassicalHopfield:
    """Binary Hopfield network with Hebbian weights and sign updates.

    Args:
        patterns: +1/-1 patterns `(count, dim)` to store.

    Example:

    >>> network = ClassicalHopfield(random_patterns(5, 64))
    >>> states = network.retrieve(network.patterns)

    References:
        Hopfield (1982). Neural networks and physical systems with emergent
        collective computational abilities.
        https://doi.org/10.1073/pnas.79.8.2554
    """

    def __init__(self, patterns):
        self.patterns = _check_patterns(patterns)
        dim = self.patterns.shape[1]
        # Hebbian rule: W_ij = (1 / d) sum over patterns of p_i p_j.
        self.weights = self.patterns.T @ self.patterns / dim
        np.fill_diagonal(self.weights, 0.0)

    @property
    def dim(self):
        return self.patterns.shape[1]

    def energy(self, states):
        """Return `E(s) = -0.5 s^T W s` of each row of `states`."""
        states = np.asarray(states, dtype="float64")
        return -0.5 * np.einsum("bi,ij,bj->b", states, self.weights, states)

    def retrieve(self, queries, max_sweeps=50, seed=0):
        """Run asynchronous sign updates until no unit changes.

        Each sweep updates every unit once, in a random order, for all
        queries at once. A unit with zero input field keeps its value, so
        an unknown (0) entry stays 0 until its field is non-zero.

        Args:
            queries: States `(count, dim)` of +1, -1 or 0 entries.
            max_sweeps: Maximum number of sweeps. Defaults to 50.
            seed: Seed of the update order. Defaults to 0.

        Returns:
            The final states, float64 `(count, dim)`.
        """
        states = np.array(queries, dtype="float64")
        if states.ndim != 2 or states.shape[1] != self.dim:
            raise ValueError(
                f"`queries` must have shape (count, {self.dim}). Received: "
                f"shape {states.shape}"
            )
        rng = np.random.default_rng(seed)
        for _ in range(max_sweeps):
            changed = False
            for unit in rng.permutation(self.dim):
                field = states @ self.weights[:, unit]
                updated = np.where(field > 0, 1.0,
                                   np.where(field < 0, -1.0,
                                            states[:, unit]))
                changed = changed or bool(np.any(updated != states[:, unit]))
                states[:, unit] = updated
            if not changed:
                break
        return states


def softmax(scores):
    """Return the softmax over the last axis, computed stably."""
    scores = scores - np.max(scores, axis=-1, keepdims=True)
    weights = np.exp(scores)
    return weights / np.sum(weights, axis=-1, keepdims=True)


def modern_update(patterns, states, beta):
    """Apply one update `xi <- P^T softmax(beta P xi)` to each row.

    Args:
        patterns: Stored patterns `P`, `(count, dim)`.
        states: State patterns, `(queries, dim)`.
        beta: Inverse temperature.

    Returns:
        The updated states, `(queries, dim)`.
    """
    return softmax(beta * states @ patterns.T) @ patterns


def modern_retrieve(patterns, queries, beta=1.0, steps=1, chunk=256):
    """Apply `steps` modern updates to `queries`, `chunk` rows at a time.

    Args:
        patterns: Stored patterns `(count, dim)`.
        queries: Queries `(queries, dim)`.
        beta: Inverse temperature. Defaults to 1.
        steps: Number of updates. Defaults to 1.
        chunk: Queries per matrix product, bounding memory to
            `chunk * count` floats. Defaults to 256.

    Returns:
        The retrieved states, float64 `(queries, dim)`.
    """
    patterns = _check_patterns(patterns)
    queries = np.asarray(queries, dtype="float64")
    results = []
    for start in range(0, len(queries), chunk):
        states = queries[start:start + chunk]
        for _ in range(steps):
            states = modern_update(patterns, states, beta)
        results.append(states)
    return np.concatenate(results, axis=0)


def exactly_retrieved(retrieved, patterns):
    """Return a boolean per row: the sign of `retrieved` equals `patterns`."""
    return np.all(np.sign(retrieved) == patterns, axis=-1)
