"""The one error type of bad input: it names where, which field, the bad value and what is allowed."""

from __future__ import annotations

from collections.abc import Iterable


class SpecError(ValueError):
    """Invalid input, raised before any work starts.

    The message always names the source (file or call), the field, the value and the valid choices,
    e.g. ``conf/model/x.yaml: field 'num_key_value_heads' = 7: must divide num_attention_heads (32)``.
    """

    def __init__(self, where: str, field: str, value: object, allowed: str | Iterable[object]) -> None:
        if not isinstance(allowed, str):
            allowed = "one of " + ", ".join(repr(a) for a in allowed)
        self.where, self.field, self.value, self.allowed = where, field, value, allowed
        super().__init__(f"{where}: field '{field}' = {value!r} is invalid: {allowed}")

    def __reduce__(self) -> tuple[type[SpecError], tuple[str, str, object, str]]:
        """Pickle by the four parts (a SpecError raised in a worker process is re-raised here)."""
        return SpecError, (self.where, self.field, self.value, str(self.allowed))
