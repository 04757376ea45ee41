"""Argument checks shared by builders and layers (pure Python)."""


def check_positive_ints(argument, values):
    """Raise `ValueError` unless `values` is a non-empty list of ints > 0.

    Args:
        argument: Argument name shown in the message, such as
            `"hidden_units"`.
        values: The value received.
    """
    if not isinstance(values, (list, tuple)) or not values or any(
        isinstance(v, bool) or not isinstance(v, int) or v <= 0
        for v in values
    ):
        raise ValueError(
            f"`{argument}` must be a non-empty list of positive integers. "
            f"Received: {argument}={values!r}"
        )
