"""Every route the app serves, read from the route tables themselves (the outer FastAPI app and gradio's mount), so a
test over them covers a route added tomorrow."""

from __future__ import annotations

from typing import Iterator


def _walk(routes, prefix: str = "") -> Iterator[tuple[str, str, object]]:
    for r in routes:
        if type(r).__name__ == "_IncludedRouter":  # FastAPI's include_router (prefix kept on the include)
            yield from _walk(r.original_router.routes, prefix + r.include_context.prefix)
        elif getattr(r, "methods", None):
            for method in sorted(r.methods):
                yield method, prefix + r.path, r


def outer_routes(app) -> list[tuple[str, str, object]]:
    """(method, path, route) of the app's own routes (the JSON API, login and logout pages), not gradio's."""
    return list(_walk(app.routes))


def all_routes(app) -> list[tuple[str, str, object]]:
    """(method, path, route) of every route: the app's own and those of the gradio app mounted at /."""
    from labeling_app.server import _gradio_app

    return outer_routes(app) + list(_walk(_gradio_app(app).routes))
