"""The one listener wrapper of the app's gradio layouts (`app.py`, `review_layout.py`).

A listener is a handler call plus the mapping of its view onto components. Two things are the
same for every one of them, so they live here: who the caller is comes from gradio's login
(`gr.Request.username`, never from the browser's state), and an error meant for people
(`RlhfError`, or a refused role: `PermissionError`) reaches the page as a `gr.Error` toast
instead of a traceback.
"""

from __future__ import annotations

from typing import Callable

import gradio as gr

from rlhf.errors import RlhfError


def listener(session_type: type, prefix: str = "") -> Callable:
    """Decorator for listeners `fn(session, *inputs)`: gradio calls them as `(request, session, *inputs)`.

    `session_type` is the layout's per-tab state class (it has `username`); a missing or foreign state
    value becomes a fresh one. `prefix` keeps gradio's API names apart when two layouts share a page
    (the review pages use "review_": both have an `on_load`).
    """

    def wrap(fn: Callable) -> Callable:
        def wrapper(request, s, *args):
            s = s if isinstance(s, session_type) else session_type()
            s.username = getattr(request, "username", None) or ""
            try:
                return fn(s, *args)
            except (PermissionError, RlhfError) as e:
                raise gr.Error(str(e), duration=8) from None

        # gradio's rule: it passes the request only to a positional parameter annotated with the class
        # gr.Request (it inserts it at that index, before the listener's inputs), and it reads that
        # annotation through typing.get_type_hints. So: not functools.wraps (its __wrapped__ would make
        # gradio read `fn`'s signature, which has no request), and the annotation is the class itself, not a
        # string that has to resolve in some module's globals.
        wrapper.__annotations__ = {"request": gr.Request}
        wrapper.__name__ = wrapper.__qualname__ = f"{prefix}{fn.__name__}"  # gradio's API name for the event
        wrapper.__doc__ = fn.__doc__
        return wrapper

    return wrap
