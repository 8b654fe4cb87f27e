"""The one listener wrapper of the app's gradio layouts (`app.py`, `review_layout.py`).

A listener is a handler call plus the mapping of its view onto components. What is the same for
every one of them lives here:

- who the caller is comes from gradio's login (`gr.Request.username`), never from the browser's state;
- a person's mistake (`RlhfError`) is shown where they made it: a listener declared with
  `@ui.inline(view)` returns `view(session, message, *inputs)` (its page with one short message next
  to the control, nothing covering the page); other listeners raise a `gr.Error`;
- a refusal (`PermissionError`: a wrong role, or a session that has ended) is a `gr.Error`; one that
  says the login is gone is titled "Session expired" and tells the person to log in again;
- every such event is ONE line in the server log (`labeling_app` logger), never a traceback;
- the text of a message is text: gradio renders a toast's message as HTML, so it is escaped here
  (a user name like `<b>x</b>` shows as typed, an `<img>` in it is never fetched).
"""

from __future__ import annotations

import html
import logging
import re
from typing import Callable

import gradio as gr

from labeling_app import security
from rlhf.errors import RlhfError

log = logging.getLogger("labeling_app")
if not log.handlers:  # one line per event in the server's output, whatever uvicorn or gradio set up
    _handler = logging.StreamHandler()
    _handler.setFormatter(logging.Formatter("%(asctime)s %(levelname)s %(name)s: %(message)s"))
    log.addHandler(_handler)
    log.setLevel(logging.INFO)
    log.propagate = False
LOGIN_GONE = re.compile(r"not logged in|log in again|no active account|session", re.I)


def people_error(e: Exception) -> gr.Error:
    """The toast for a refusal or a mistake with no place on the page: escaped text, no traceback in the log."""
    msg = " ".join(str(e).split())
    if isinstance(e, PermissionError) and LOGIN_GONE.search(msg):
        return gr.Error(html.escape(f"{msg}. Your session has expired: log in again (reload the page)."),
                        title="Session expired", duration=None, print_exception=False)
    return gr.Error(html.escape(msg), duration=8, print_exception=False)


def listener(session_type: type, prefix: str = "") -> Callable:
    """Decorator for listeners `fn(session, *inputs)`: gradio calls them as `(request, session, *inputs)`.

    `session_type` is the layout's per-tab state class (it has `username`); a missing or foreign state
    value becomes a fresh one. `prefix` keeps gradio's API names apart when two layouts share a page
    (the review pages use "review_": both have an `on_load`). `@ui.inline(view)` declares where a
    mistake is shown (see the module docstring).
    """

    def wrap(fn: Callable, inline: Callable | None = None) -> Callable:
        name = f"{prefix}{fn.__name__}"

        def wrapper(request, s, *args):
            s = s if isinstance(s, session_type) else session_type()
            s.username = getattr(request, "username", None) or ""
            try:
                return fn(s, *args)
            except (PermissionError, RlhfError) as e:
                kind = "refused" if isinstance(e, PermissionError) else "mistake"
                log.warning("%s %s for %s: %s", name, kind, s.username or "(no login)", " ".join(str(e).split()))
                if inline is not None and not isinstance(e, PermissionError):
                    return inline(s, str(e), *args)
                raise people_error(e) from None
            except gr.Error:
                raise
            except Exception as e:  # a bug, not a person's mistake: logged once with its traceback, a reference shown
                ref = security.internal_error(e, name)
                raise gr.Error(security.internal_error_message(ref), duration=None, print_exception=False) from None

        # gradio's rule: it passes the request only to a positional parameter annotated with the class
        # gr.Request (it inserts it at that index, before the listener's inputs), and it reads that
        # annotation through typing.get_type_hints. So: not functools.wraps (its __wrapped__ would make
        # gradio read `fn`'s signature, which has no request), and the annotation is the class itself, not a
        # string that has to resolve in some module's globals.
        wrapper.__annotations__ = {"request": gr.Request}
        wrapper.__name__ = wrapper.__qualname__ = name  # gradio's API name for the event
        wrapper.__doc__ = fn.__doc__
        return wrapper

    wrap.inline = lambda view: (lambda fn: wrap(fn, view))
    return wrap
