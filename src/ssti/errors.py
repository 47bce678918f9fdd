"""The one error type users see: a one-line message naming the field and what is allowed."""


class SSTIError(ValueError):
    """Bad input or an unmet precondition, explained in one line for a person.

    The CLI prints the message and exits non-zero; the Python API lets it propagate.
    """


def check_choice(field: str, value, allowed) -> None:
    """Raise SSTIError unless `value` is one of `allowed`, naming the field and the choices."""
    allowed = list(allowed)
    if value not in allowed:
        raise SSTIError(f"{field}: {value!r} is not one of {', '.join(map(str, allowed))}")
