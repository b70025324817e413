"""``"package.module:attribute"`` import paths: how a config names a user's model or data factory.

One interface for the CLI, ``dvc.yaml``, a deployment's worker and a notebook alike: a worker
rebuilds the model from the config alone, so the config names code, never holds it. Paths
resolve as ``python -m`` resolves them: from the working directory first (a package beside the
project), then from installed packages.
"""

from __future__ import annotations

import importlib
import os
import sys
from typing import Any

from hill_core.errors import HillError


def import_object(path: str, key: str) -> Any:
    """The object ``path`` names (``"pkg.mod:factory"``; the attribute may be dotted).

    Args:
        key: the config key that holds ``path``, named in the error.
    Raises:
        HillError: one line: the module is missing, importing it failed, or it lacks the name.
    """
    module_name, _, attribute = path.partition(":")
    if os.getcwd() not in sys.path:
        sys.path.insert(0, os.getcwd())
    try:
        found: Any = importlib.import_module(module_name)
    except ModuleNotFoundError as err:
        missing = err.name or module_name
        raise HillError(
            f"{key}: cannot import {module_name!r} (no module {missing!r} in the working "
            "directory or installed packages)"
        ) from None
    except Exception as err:  # the user's module raised while importing: say what and where
        raise HillError(f"{key}: importing {module_name!r} raised {one_line(err)}") from None
    for part in attribute.split("."):
        if not hasattr(found, part):
            raise HillError(f"{key}: module {module_name!r} has no {attribute!r}")
        found = getattr(found, part)
    return found


def call_factory(factory: Any, key: str, offered: dict[str, Any], kwargs: dict[str, Any]) -> Any:
    """``factory(**offered, **kwargs)``, passing only the ``offered`` arguments its signature
    takes (all of them when it takes ``**kwargs``); ``kwargs`` always go.

    Raises:
        HillError: ``factory`` is not callable, or the call raised; one line naming ``key``.
    """
    import inspect

    if not callable(factory):
        raise HillError(f"{key}: {type(factory).__name__} object is not callable")
    try:
        params = dict(inspect.signature(factory).parameters)
    except (TypeError, ValueError):  # a builtin without a signature: offer everything
        params = None
    takes_any = params is None or any(p.kind is p.VAR_KEYWORD for p in params.values())
    chosen = {k: v for k, v in offered.items() if takes_any or k in params}
    try:
        return factory(**chosen, **kwargs)
    except Exception as err:
        raise HillError(f"{key}: {path_of(factory)} raised {one_line(err)}") from None


def path_of(obj: Any) -> str:
    """``module:qualname`` of a function or class, for messages."""
    return f"{getattr(obj, '__module__', '?')}:{getattr(obj, '__qualname__', type(obj).__name__)}"


def one_line(err: BaseException) -> str:
    """``Type: message (at file.py:line)``: the error and where in the user's code it rose."""
    import traceback

    text = " ".join(str(err).split())[:300]
    frames = traceback.extract_tb(err.__traceback__)
    where = f" (at {os.path.basename(frames[-1].filename)}:{frames[-1].lineno})" if frames else ""
    return f"{type(err).__name__}{': ' + text if text else ''}{where}"
