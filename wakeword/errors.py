"""One small exception hierarchy for user-facing errors.

Library code raises these; the CLI turns each into a single line on stderr and
a documented non-zero exit code. Anything else escaping is a bug.
"""

from __future__ import annotations


class WakewordError(Exception):
    """Base class for errors a person can act on (bad file, bad config, no device)."""

    exit_code: int = 1


class ConfigError(WakewordError):
    """A YAML config or a CLI override is invalid (names the key and the file)."""

    exit_code = 2


class ModelError(WakewordError):
    """A model file is missing, corrupt, or does not match what the runtime expects."""

    exit_code = 3


class AudioError(WakewordError):
    """An audio file cannot be read, or an input device cannot be opened."""

    exit_code = 4
