"""Finite groups as permutations, and their actions on images and sets.

A group element is a permutation `p` of `range(n)`, stored as a tuple with
`p[i]` the image of point `i`.

Composition convention: `compose(g, h)`, written `g·h`, applies `h` first
and then `g`, so `compose(g, h)[i] == g[h[i]]`, as for functions
`(g∘h)(x) = g(h(x))`. Actions follow the same rule: acting with `g·h` on
data equals acting with `h`, then with `g`, so every action here is a
homomorphism from the group to transformations of the data.

The dihedral group D_n is the symmetry group of a regular n-gon whose
vertices are numbered 0..n-1 counterclockwise. `R` is the rotation by
360/n degrees counterclockwise (`i -> i + 1 mod n`) and `F` the reflection
that fixes vertex 0 (`i -> -i mod n`). Every element is `F^f R^k` with
`f` in {0, 1} and `k` in 0..n-1, named `id`, `R`, `R²`, ..., `F`, `FR`,
`FR²`, ...; `FR²` means: rotate twice, then reflect. The relation
`F·R·F = R⁻¹` holds.

D_4 acts on square images `(..., height, width, channels)` through the
corners numbered counterclockwise on screen: 0 top-left, 1 bottom-left,
2 bottom-right, 3 top-right. `R` rotates the image by 90 degrees
counterclockwise (the content of corner i moves to corner i + 1, like
`np.rot90`), and `F` transposes height and width, which fixes the top-left
and bottom-right corners.

S_n acts on sets stored as arrays `(..., n, features)`: the element at
position `i` moves to position `p[i]`.

Example:

```python
d3 = dihedral(3)
print(d3.cayley_table_text())
d4 = dihedral(4)
rotated = act_on_images(d4["R"], images)      # np.rot90 on height, width
invariant = OrbitAverage(model, group="D4")   # exactly D_4-invariant
```
"""

import itertools
import logging

import keras

logger = logging.getLogger(__name__)

SUPERSCRIPTS = str.maketrans("0123456789", "⁰¹²³⁴⁵⁶⁷⁸⁹")


# --- permutations -----------------------------------------------------------

def _check_permutation(p, n=None):
    p = tuple(int(i) for i in p)
    if sorted(p) != list(range(len(p))) or (n is not None and len(p) != n):
        size = f" of range({n})" if n is not None else ""
        raise ValueError(
            f"A group element must be a permutation{size} given as a tuple "
            f"of the images of 0, 1, ... Received: {p!r}"
        )
    return p


def compose(g, h):
    """Return the permutation `g·h`: apply `h` first, then `g`."""
    if len(g) != len(h):
        raise ValueError(
            f"Permutations of different sizes cannot be composed. Received: "
            f"{g!r} and {h!r}"
        )
    return tuple(g[i] for i in h)


def inverse(g):
    """Return the permutation `g⁻¹` with `compose(g, g⁻¹)` the identity."""
    result = [0] * len(g)
    for i, image in enumerate(g):
        result[image] = i
    return tuple(result)


def cycle_notation(p):
    """Return `p` in cycle notation, such as `(0 1 2)(3 4)`, or `id`."""
    seen, cycles = set(), []
    for start in range(len(p)):
        if start in seen or p[start] == start:
            seen.add(start)
            continue
        cycle, i = [], start
        while i not in seen:
            seen.add(i)
            cycle.append(i)
            i = p[i]
        cycles.append("(" + " ".join(str(i) for i in cycle) + ")")
    return "".join(cycles) or "id"


# --- groups -----------------------------------------------------------------

class PermutationGroup:
    """A finite group given by permutations, with element names.

    Args:
        name: Group name, such as `"D4"`.
        elements: Every element as a permutation tuple; the first must be
            the identity. The set must be closed under composition.
        names: Name of each element. Defaults to cycle notation.
        degree: `n` of the permuted points `range(n)`. Defaults to the
            length of the permutations.

    Raises:
        ValueError: an element is not a permutation, the first element is
            not the identity, or the set is not closed under composition.
    """

    def __init__(self, name, elements, names=None, degree=None):
        elements = [_check_permutation(p) for p in elements]
        if not elements:
            raise ValueError("`elements` must not be empty. Received: []")
        degree = degree or len(elements[0])
        elements = [_check_permutation(p, degree) for p in elements]

        identity = tuple(range(degree))
        if elements[0] != identity:
            raise ValueError(
                f"The first element must be the identity {identity}. "
                f"Received: {elements[0]!r}"
            )
        if len(set(elements)) != len(elements):
            raise ValueError(f"`elements` has duplicates: {elements!r}")

        self.name = name
        self.degree = degree
        self.elements = tuple(elements)
        self.names = tuple(names) if names is not None else tuple(
            cycle_notation(p) for p in elements)
        if len(self.names) != len(self.elements):
            raise ValueError(
                f"`names` must name each of the {len(self.elements)} "
                f"elements. Received: {len(self.names)} names"
            )
        self._index = {p: i for i, p in enumerate(self.elements)}

        for g in self.elements:
            for h in self.elements:
                if compose(g, h) not in self._index:
                    raise ValueError(
                        f"`elements` of group {name!r} is not closed: "
                        f"{g}·{h} = {compose(g, h)} is missing"
                    )

    def __len__(self):
        return len(self.elements)

    def __iter__(self):
        return iter(self.elements)

    def __getitem__(self, name):
        """Return the element named `name`, such as `"FR²"` or `"FR2"`."""
        requested = str(name).translate(SUPERSCRIPTS)
        for element, element_name in zip(self.elements, self.names):
            if element_name == requested:
                return element
        raise KeyError(
            f"Group {self.name} has no element named {name!r}. Elements: "
            f"{', '.join(self.names)}"
        )

    @property
    def identity(self):
        return self.elements[0]

    def index(self, element):
        """Return the position of `element` in `elements`."""
        return self._index[tuple(element)]

    def name_of(self, element):
        """Return the name of `element`."""
        return self.names[self.index(element)]

    def compose(self, g, h):
        """Return `g·h` (apply `h` first, then `g`)."""
        return compose(g, h)

    def inverse(self, g):
        """Return `g⁻¹`."""
        return inverse(g)

    def cayley_table(self):
        """Return `table[i][j]`, the index of `elements[i]·elements[j]`."""
        return [[self._index[compose(g, h)] for h in self.elements]
                for g in self.elements]

    def cayley_table_text(self):
        """Return the Cayley table as aligned text with element names.

        Row `g` and column `h` hold `g·h` (apply `h` first, then `g`).
        """
        width = max(len(n) for n in self.names) + 1
        header = " " * width + "|" + "".join(
            f"{n:>{width}}" for n in self.names)
        lines = [header, "-" * len(header)]
        for row, g_name in zip(self.cayley_table(), self.names):
            lines.append(f"{g_name:>{width}}|" + "".join(
                f"{self.names[i]:>{width}}" for i in row))
        return "\n".join(lines)

    def __repr__(self):
        return f"PermutationGroup({self.name!r}, order={len(self)})"


def _power_name(letter, power):
    if power == 0:
        return ""
    if power == 1:
        return letter
    return letter + str(power).translate(SUPERSCRIPTS)


def cyclic(n):
    """Return the cyclic group C_n: rotations `R^k` of an n-gon.

    Args:
        n: Order of the group, at least 1.
    """
    if not isinstance(n, int) or n < 1:
        raise ValueError(f"`n` must be a positive integer. Received: {n!r}")
    rotation = tuple((i + 1) % n for i in range(n))
    elements, names, current = [], [], tuple(range(n))
    for k in range(n):
        elements.append(current)
        names.append(_power_name("R", k) or "id")
        current = compose(rotation, current)
    return PermutationGroup(f"C{n}", elements, names)


def dihedral(n):
    """Return the dihedral group D_n of order 2n on the vertices of an n-gon.

    Elements are `R^k` then `F·R^k` for k = 0..n-1, named `id`, `R`,
    `R²`, ..., `F`, `FR`, `FR²`, ...

    Args:
        n: Number of vertices, at least 3.
    """
    if not isinstance(n, int) or n < 3:
        raise ValueError(
            f"`n` must be an integer >= 3 (D_n is the symmetry group of an "
            f"n-gon). Received: {n!r}"
        )
    rotation = tuple((i + 1) % n for i in range(n))
    reflection = tuple((-i) % n for i in range(n))
    rotations, current = [], tuple(range(n))
    for _ in range(n):
        rotations.append(current)
        current = compose(rotation, current)
    elements = rotations + [compose(reflection, r) for r in rotations]
    names = [_power_name("R", k) or "id" for k in range(n)] + [
        "F" + _power_name("R", k) for k in range(n)]
    return PermutationGroup(f"D{n}", elements, names)


def symmetric(n):
    """Return the symmetric group S_n of all n! permutations of range(n).

    Elements are in lexicographic order (identity first) and named in cycle
    notation.

    Args:
        n: Number of points, from 1 to 8 (8! = 40320 elements).
    """
    if not isinstance(n, int) or not 1 <= n <= 8:
        raise ValueError(
            f"`n` must be an integer in [1, 8]. Received: {n!r}"
        )
    return PermutationGroup(f"S{n}", list(itertools.permutations(range(n))))


def group_from_name(name):
    """Return the group named `"C4"`, `"D4"`, `"S3"` (or `"D_4"`, `"d4"`)."""
    text = str(name).replace("_", "").upper()
    builders = {"C": cyclic, "D": dihedral, "S": symmetric}
    if len(text) >= 2 and text[0] in builders and text[1:].isdigit():
        return builders[text[0]](int(text[1:]))
    raise ValueError(
        f"Unknown group {name!r}. Use C<n>, D<n> or S<n>, such as 'D4'."
    )


# --- actions ----------------------------------------------------------------

def dihedral_normal_form(element):
    """Return `(f, k)` with `element == F^f R^k` in D_n (n = len(element))."""
    n = len(element)
    if (element[1] - element[0]) % n == 1:
        return 0, element[0] % n
    if (element[1] - element[0]) % n == n - 1:
        return 1, (-element[0]) % n
    raise ValueError(
        f"{element!r} is not an element of the dihedral group D_{n}."
    )


def act_on_images(element, images):
    """Apply a D_4 element to square images `(..., height, width, channels)`.

    `R^k` rotates by `k` times 90 degrees counterclockwise, then `F`
    transposes height and width when `f == 1`. C_4 elements are D_4
    rotations and act the same way. Works on TensorFlow tensors and NumPy
    arrays, and compiles under XLA.

    Args:
        element: A permutation of range(4) in D_4.
        images: Tensor of rank >= 3 with equal height and width.

    Returns:
        The transformed images, with the input's shape.
    """
    from keras import ops

    if len(element) != 4:
        raise ValueError(
            f"Images carry the action of D_4, whose elements permute 4 "
            f"corners. Received: {element!r}"
        )
    f, k = dihedral_normal_form(tuple(element))
    rank = len(images.shape)
    if rank < 3 or images.shape[-3] != images.shape[-2]:
        raise ValueError(
            "D_4 acts on square images (..., height, width, channels). "
            f"Received: shape={tuple(images.shape)}"
        )
    height_axis, width_axis = rank - 3, rank - 2
    result = images
    for _ in range(k):
        # One counterclockwise quarter turn: transpose, then flip rows,
        # as np.rot90 does. [..., H, W, C] -> [..., W, H, C]
        result = ops.flip(ops.swapaxes(result, height_axis, width_axis),
                          axis=height_axis)
    if f:
        # [..., H, W, C] -> [..., W, H, C]
        result = ops.swapaxes(result, height_axis, width_axis)
    return result


def act_on_sets(element, sets):
    """Apply an S_n element to sets `(..., n, features)`.

    The element at position `i` moves to position `element[i]`, so the
    output is `sets[..., inverse(element), :]`.

    Args:
        element: A permutation of range(n).
        sets: Tensor whose second-to-last axis has length n.

    Returns:
        The permuted sets.
    """
    from keras import ops

    if sets.shape[-2] != len(element):
        raise ValueError(
            f"The permutation {element!r} acts on sets of {len(element)} "
            f"elements. Received: shape={tuple(sets.shape)}"
        )
    return ops.take(sets, list(inverse(element)), axis=len(sets.shape) - 2)


ACTIONS = {"image": act_on_images, "set": act_on_sets}


def _check_action(action):
    if action not in ACTIONS:
        raise ValueError(
            f"`action` must be one of {', '.join(ACTIONS)}. Received: "
            f"{action!r}"
        )
    return ACTIONS[action]


def orbit(group, x, action="image"):
    """Return `[g·x for g in group]` stacked on a new first axis.

    Args:
        group: A `PermutationGroup`.
        x: Data the action accepts.
        action: `"image"` (D_4 or C_4 on square images) or `"set"` (S_n or
            any subgroup on sets). Defaults to `"image"`.

    Returns:
        Tensor `(len(group), *x.shape)`.
    """
    from keras import ops

    act = _check_action(action)
    return ops.stack([act(g, x) for g in group], axis=0)


def orbit_augment(group, x, y, action="image"):
    """Return every transformed copy of a batch with its labels repeated.

    Orbit augmentation trains on `g·x` for every `g` in the group, so a
    batch of `b` examples becomes `len(group) * b` examples ordered by
    group element. Labels are repeated because they are invariant.

    Args:
        group: A `PermutationGroup`.
        x: Batch of data `(batch, ...)`.
        y: Labels `(batch, ...)`.
        action: `"image"` or `"set"`. Defaults to `"image"`.

    Returns:
        `(x_orbit, y_orbit)`, each with `len(group) * batch` rows.
    """
    from keras import ops

    stacked = orbit(group, x, action)
    # [G, B, ...] -> [G * B, ...]
    x_orbit = ops.reshape(stacked, (-1,) + tuple(stacked.shape[2:]))
    y_orbit = ops.concatenate([y] * len(group), axis=0)
    return x_orbit, y_orbit


@keras.saving.register_keras_serializable(package="zoo")
class OrbitAverage(keras.Model):
    """Make a model exactly invariant by averaging it over a group's orbit.

    The output is `mean over g in G of model(g·x)`. For any `h` in G,
    `{g·h : g in G}` is G again, so the output at `h·x` equals the output
    at `x` up to floating-point rounding. It costs `len(G)` forward passes,
    run as one batch.

    Args:
        model: The Keras model to wrap.
        group: Group name (`"D4"`, `"C4"`, `"S3"`, ...). Defaults to `"D4"`.
        action: `"image"` for square images `(batch, height, width,
            channels)` or `"set"` for sets `(batch, n, features)`. Defaults
            to `"image"`.

    Example:

    ```python
    invariant = OrbitAverage(zoo.get_model("cnn"), group="D4")
    probabilities = invariant(images)
    ```

    References:
        Cohen, Welling (2016). Group Equivariant Convolutional Networks.
        https://arxiv.org/abs/1602.07576
    """

    def __init__(self, model, group="D4", action="image", **kwargs):
        super().__init__(**kwargs)
        _check_action(action)
        self.group_name = str(group)
        self.group = group_from_name(group)
        if action == "image" and self.group.degree != 4:
            raise ValueError(
                "Images carry the action of D_4 and its subgroups of degree "
                f"4 (C4, D4). Received: group={group!r}"
            )
        self.action = action
        self.model = model

    def call(self, inputs, training=None):
        from keras import ops

        batch = ops.shape(inputs)[0]
        stacked = orbit(self.group, inputs, self.action)
        # [G, B, ...] -> [G * B, ...]
        flat = ops.reshape(stacked, (-1,) + tuple(inputs.shape[1:]))
        outputs = self.model(flat, training=training)
        # [G * B, ...] -> [G, B, ...] -> [B, ...]
        outputs = ops.reshape(
            outputs, (len(self.group), batch) + tuple(outputs.shape[1:]))
        return ops.mean(outputs, axis=0)

    def compute_output_shape(self, input_shape):
        return self.model.compute_output_shape(input_shape)

    def get_config(self):
        config = super().get_config()
        config.update({
            "model": keras.saving.serialize_keras_object(self.model),
            "group": self.group_name,
            "action": self.action,
        })
        return config

    @classmethod
    def from_config(cls, config):
        config = dict(config)
        config["model"] = keras.saving.deserialize_keras_object(
            config["model"])
        return cls(**config)

