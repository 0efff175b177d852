"""The config argument of a recipe file: `--config configs/FILE.py:A,B` passes 'A,B' to its `get_config`."""

from collections.abc import Sequence


def config_argument(arg: str, fields: dict[str, Sequence[str]]) -> tuple[str, ...]:
    """Splits a config argument 'A,B' into one value per field, each checked against its choices; trailing fields
    left out take their first choice. ValueError names the field and its choices."""
    values = arg.split(",") if arg else []
    form = ",".join(fields)
    if len(values) > len(fields):
        raise ValueError(f"config argument {arg!r}: expected {form}, got {len(values)} values")
    for value, (name, choices) in zip(values, fields.items()):
        if value not in choices:
            raise ValueError(
                f"config argument {arg!r}: {name} {value!r} is not one of {tuple(choices)} "
                f"(expected {form}, e.g. {','.join(c[0] for c in fields.values())!r})"
            )
    return tuple(values) + tuple(choices[0] for choices in list(fields.values())[len(values) :])
