"""Experiments that reproduce a paper's figure; `zoo experiment` runs them.

Each experiment writes one PNG and returns its measured numbers as a dict.
"""

EXPERIMENTS = ("double-descent", "double-descent-trained", "som-map")


def run_experiment(name, out, seed=0):
    """Run experiment `name`, write its PNG to `out` and return numbers.

    Args:
        name: One of `EXPERIMENTS`.
        out: PNG path.
        seed: Seed. Defaults to 0.

    Returns:
        A JSON-ready dict of the measured numbers.
    """
    if name == "double-descent":
        from zoo.experiments import double_descent

        results = double_descent.run(out, seed=seed)
        return {result.kind: result.summary() for result in results}
    if name == "double-descent-trained":
        from zoo.experiments import trained_width

        return trained_width.run(out, seed=seed).summary()
    if name == "som-map":
        from zoo.experiments import som_map

        return som_map.run(out, seed=seed)
    raise ValueError(
        f"Unknown experiment {name!r}. Experiments: {', '.join(EXPERIMENTS)}"
    )
