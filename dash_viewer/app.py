"""The Dash application: ``create_app`` builds it for a store, ``run`` serves it (localhost by default).

Thumbnails are served by a plain Flask route, ``/thumb/<partition>/<int:idx>``: the browser only ever names a
known partition and an integer point id, never a path, and the route only reads the store's
``decoded_frames`` table. Responses are compressed by flask-compress (``Dash(compress=True)``: brotli, zstd or
gzip, whichever the browser accepts), because the initial figure for 50,000 points is mostly base64 that
compresses well; JPEG thumbnails are left as they are.
"""

from __future__ import annotations

import os
import threading
from pathlib import Path

import flask
from dash import Dash

from dash_viewer.callbacks import register
from dash_viewer.data import ViewerStore
from dash_viewer.layout import build_layout

ASSETS = Path(__file__).resolve().parent / "assets"


def create_app(
    store: str | os.PathLike[str] | None = None,
    *,
    poll_ms: int = 3000,
    stat_ttl: float = 1.0,
    run_lookup: bool = True,
    warm: bool = True,
) -> Dash:
    """A viewer for ``store`` (default ``neural_sorter.settings.store_root()``), ready to ``run``.

    ``poll_ms`` is how often the page checks for a newer materialization; ``stat_ttl`` how long file stamps
    are trusted on the server; ``run_lookup`` asks the Dagster instance (if one exists) for run ids; ``warm``
    loads the newest partition in the background right away so the first page view does not wait for it.
    """
    viewer = ViewerStore(store, stat_ttl=stat_ttl, run_lookup=run_lookup)
    app = Dash(
        __name__,
        assets_folder=str(ASSETS),
        title="neural-sorter viewer",
        update_title=None,
        compress=True,
        suppress_callback_exceptions=True,  # thumbnails and gallery buttons are created by callbacks
    )
    app.layout = lambda: build_layout(viewer, poll_ms)
    register(app, viewer)
    _add_routes(app.server, viewer)
    app.server.config["NEURAL_SORTER_VIEWER"] = viewer
    if warm:
        threading.Thread(target=viewer.warm, name="viewer-warm", daemon=True).start()
    return app


def viewer_of(app: Dash) -> ViewerStore:
    """The ``ViewerStore`` behind an app made by ``create_app`` (for tests and benchmarks)."""
    return app.server.config["NEURAL_SORTER_VIEWER"]


def _add_routes(server: flask.Flask, viewer: ViewerStore) -> None:
    @server.route("/thumb/<partition>/<int:idx>")
    def thumbnail(partition: str, idx: int) -> flask.Response:
        if not viewer.is_partition(partition):
            flask.abort(404)
        version = flask.request.args.get("v")
        small = flask.request.args.get("s") == "1"
        jpeg = viewer.thumbnail(partition, idx, version=version, small=small)
        if jpeg is None:
            flask.abort(404)
        response = flask.Response(jpeg, mimetype="image/jpeg")
        # A versioned URL always names the same picture; an unversioned one may change with the next run.
        response.headers["Cache-Control"] = "private, max-age=86400, immutable" if version else "no-cache"
        response.headers["X-Content-Type-Options"] = "nosniff"
        return response

    @server.before_request
    def only_thumbnails_under_thumb() -> None:
        # Anything else under /thumb (negative ids, extra path pieces, encoded slashes) is a plain 404 rather
        # than falling through to Dash's catch-all page route.
        path = flask.request.path
        if (path == "/thumb" or path.startswith("/thumb/")) and flask.request.endpoint != "thumbnail":
            flask.abort(404)


def run(host: str = "127.0.0.1", port: int = 8050, store: str | None = None, debug: bool = False) -> None:
    """Serves the viewer until interrupted (``neural-sorter view`` calls this after setting the home)."""
    app = create_app(store)
    viewer = viewer_of(app)
    partitions = viewer.partitions()
    print(f"neural-sorter viewer on http://{host}:{port}/  (store {viewer.root}, {len(partitions)} partitions)")
    if host not in ("127.0.0.1", "localhost", "::1"):
        print("warning: the viewer has no authentication; it is now reachable from other machines")
    app.run(host=host, port=port, debug=debug, use_reloader=False)
