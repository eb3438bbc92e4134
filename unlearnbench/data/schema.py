"""The error every benchmark loader raises for data that does not have the declared schema."""

from unlearnbench.errors import UserError


class SchemaError(UserError):
    """A dataset, config, split, field or row is missing or malformed; the message names it."""
