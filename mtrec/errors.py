"""Exceptions raised by mtrec.

Every error that a user can cause with bad input is one of these, and its
message names the offending key, column or file.
"""

from __future__ import annotations


class MtrecError(Exception):
    """Base class of every error mtrec raises on purpose."""


class ConfigError(MtrecError, ValueError):
    """A configuration key is unknown, missing, of the wrong type or out of range."""


class SchemaError(MtrecError, ValueError):
    """A table lacks a column that is needed, or a column has the wrong type."""


class DataError(MtrecError, ValueError):
    """A file is missing, empty or unreadable, or its values are unusable."""


class UnreadableFileError(DataError):
    """A file cannot be read past some point: truncated, damaged (a page checksum), or not in its format."""


class NotFittedError(MtrecError, RuntimeError):
    """A fitted object (for example the feature encoder) was used before `fit`."""


class KerasVersionError(MtrecError, ImportError):
    """A module that needs Keras 2 (tf_keras, for TensorFlow Recommenders) was imported in a Keras 3 process."""


class RunDirectoryError(MtrecError, RuntimeError):
    """A run directory is in use by another live process, or holds another run."""


class CheckpointError(MtrecError, RuntimeError):
    """No checkpoint of an interrupted run can be loaded."""


class ModelFileError(MtrecError, ValueError):
    """A saved model is truncated, refused by Keras' safe mode, or does not match its features."""
