"""StackStorm's exception classes that pack code raises or catches."""


class StackStormBaseException(Exception):
    """The base of StackStorm's own exceptions."""


__all__ = ["StackStormBaseException"]
