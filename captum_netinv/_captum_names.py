"""Captum's argument names where a Captum user types them: one rule for every method's aliases.

A method keeps its own name for a setting and also takes Captum's (``show_progress`` for
``progress``, ...); these helpers settle the two, or say which argument to use instead.
"""

from __future__ import annotations

from typing import TypeVar

from captum_netinv._utils import excerpt

__all__ = ["refuse_captum_name", "resolve_alias"]

_Value = TypeVar("_Value")
#: Kinds of value two names may both be given with when they agree: plain scalars, whose
#: equality is unambiguous (a tensor's ``==`` is elementwise, a list and a tuple never agree).
_COMPARABLE = (bool, int, float, str)


def resolve_alias(
    *,
    ours_name: str,
    ours_value: _Value | None,
    captum_name: str,
    captum_value: _Value | None,
    default: _Value,
) -> _Value:
    r"""
    The value of a setting that a method names ``ours_name`` and Captum names
    ``captum_name``: the one given (None means not given), else ``default``. Both given raises
    a ``TypeError`` naming both, unless they are the same plain value (bool, int, float or str
    of the same type).

    Args:
        ours_name (str): The method's own name of the setting, e.g. ``"progress"``.
        ours_value (object or None): The value passed under ``ours_name``; None: not given.
        captum_name (str): Captum's name of the same setting, e.g. ``"show_progress"``.
        captum_value (object or None): The value passed under ``captum_name``; None: not given.
        default (object): The value when neither is given.

    Returns:
        *object*: ``ours_value``, ``captum_value`` or ``default``.

    Examples::

        >>> resolve_alias(ours_name="progress", ours_value=None, captum_name="show_progress",
        ...               captum_value=False, default=True)
        False
    """
    if captum_value is None:
        return default if ours_value is None else ours_value
    if ours_value is None or _same(ours_value, captum_value):
        return captum_value
    raise TypeError(
        f"`{ours_name}` and `{captum_name}` (Captum's name for `{ours_name}`) were both given, "
        f"with {excerpt(ours_value)} and {excerpt(captum_value)}: they are one setting, pass "
        f"only one of them"
    )


def refuse_captum_name(captum_name: str, captum_value: object, instead: str) -> None:
    r"""
    Raises a ``TypeError`` when a Captum argument that has no counterpart here was given (not
    None), saying what to use ``instead``.

    Args:
        captum_name (str): Captum's argument name, e.g. ``"internal_batch_size"``.
        captum_value (object): The value passed under it; None: not given, nothing raised.
        instead (str): What to do instead, a sentence part naming the argument to use, e.g.
                    ``"pass `batch_size` to InverseRecognition.attribute"``.

    Examples::

        >>> refuse_captum_name(captum_name="internal_batch_size", captum_value=None,
        ...                    instead="pass `batch_size`")
    """
    if captum_value is None:
        return
    raise TypeError(f"`{captum_name}` (got {excerpt(captum_value)}) has no use here: {instead}")


def _same(one: object, other: object) -> bool:
    """Whether ``one`` and ``other`` are the same plain value of the same type."""
    return type(one) is type(other) and isinstance(one, _COMPARABLE) and one == other
