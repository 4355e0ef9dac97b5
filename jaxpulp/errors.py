"""Exceptions raised by jaxpulp. Every message names the argument, the value and what was expected."""


class JaxpulpError(ValueError):
    """Base class of every jaxpulp error (a ValueError, so callers may catch either)."""


class UnsupportedConfig(JaxpulpError):
    """The configuration is outside what the C library defines (a named rule or library defect)."""

    def __init__(self, rule: str, message: str):
        self.rule = rule
        super().__init__(f"[{rule}] {message}")
