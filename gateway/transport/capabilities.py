"""Checking, at startup, that the server underneath still has what a transport class builds on.

uvicorn documents its protocol options but not the attributes its protocol classes and ``Config`` carry.
Where the transport relies on one, it names it here and :func:`unset_attributes` looks for it in the code
of the method that sets it (``__init__`` or ``load``), so a release that renames one switches the feature
to its portable path with a WARNING, instead of failing on the first connection or, worse, silently.
"""


def unset_attributes(owner: object, method: str, names: tuple[str, ...]) -> list[str]:
    """``owner.<name>`` for each of ``names`` that ``owner.method`` never mentions (so never sets)."""
    code = getattr(getattr(owner, method, None), "__code__", None)
    mentioned = set(code.co_names) if code is not None else set()
    label = getattr(owner, "__name__", type(owner).__name__)
    return [f"{label}.{name}" for name in names if name not in mentioned]


def missing_members(owner: object, names: tuple[str, ...]) -> list[str]:
    """``owner.<name>`` for each of ``names`` that ``owner`` (a class or a module) lacks."""
    label = getattr(owner, "__name__", type(owner).__name__)
    return [f"{label}.{name}" for name in names if not hasattr(owner, name)]
