"""Errors that name what is wrong with the user's input, not where torch tripped over it."""


class MatsegError(Exception):
    """Base class of every error napari-matseg raises on purpose."""


class InputError(MatsegError, ValueError):
    """The image, labels or options given by the user cannot be used as they are."""


class BundleError(MatsegError):
    """A model bundle file is missing, corrupt or incompatible with this version."""
