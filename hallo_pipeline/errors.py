"""Errors a user can cause and fix. Each message names the input, what was wrong and what to do."""

from __future__ import annotations


class HalloError(Exception):
    """Base of every error meant to be shown to the user as is."""


class CheckpointError(HalloError):
    """A model file is missing, damaged, unsafe or not the file we expect."""


class InputError(HalloError, ValueError):
    """An image, audio or setting given by the user cannot be used."""


class Cancelled(HalloError):
    """The caller's interrupt check asked us to stop."""


class MissingDependencyError(HalloError, ImportError):
    """An optional library needed for this step is not installed; the message names the pip command."""
