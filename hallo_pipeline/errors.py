"""Errors a user can cause and fix. Each message names the input, what was wrong and what to do."""

from __future__ import annotations


class HalloError(Exception):
    """Base of every error meant to be shown to the user as is."""


class CheckpointError(HalloError):
    """A model file is missing, damaged, unsafe or not the file we expect."""


class InputError(HalloError, ValueError):
    """An image, audio or setting given by the user cannot be used.

    `input` names the argument or option at fault (e.g. "clip_length"), so a front end can
    point at its own control for it (a node input, a command-line flag).
    """

    def __init__(self, message: str, input: str | None = None):
        super().__init__(message)
        self.input = input


class Cancelled(HalloError):
    """The caller's interrupt check asked us to stop."""


class MissingDependencyError(HalloError, ImportError):
    """An optional library needed for this step is not installed; the message names the pip command."""


class HalloWarning(UserWarning):
    """Something the user should know that does not stop the run (e.g. silent audio). Shown by the
    command line even when it hides other libraries' warnings."""
