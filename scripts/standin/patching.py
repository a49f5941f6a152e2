"""Helpers to extend moto's response classes in place.

moto builds a fresh response object per request and looks its operation up
by method name on the class, so replacing or adding class attributes covers
every account and region backend.
"""

import functools


def extend(cls, name):
    """Replace ``cls.name``; the decorated function gets the original first."""
    original = getattr(cls, name)

    def decorator(fn):
        @functools.wraps(fn)
        def method(self):
            return fn(original, self)

        setattr(cls, name, method)
        return fn

    return decorator


def operation(cls):
    """Add an operation moto lacks, named after the function (snake_case)."""

    def decorator(fn):
        # A newer moto implementing the operation should be noticed, not shadowed.
        if hasattr(cls, fn.__name__):
            raise RuntimeError(f"{cls.__name__}.{fn.__name__} already exists")
        setattr(cls, fn.__name__, fn)
        return fn

    return decorator
