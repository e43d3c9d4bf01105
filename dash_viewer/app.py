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


LOOPBACK_NAMES = frozenset({"127.0.0.1", "localhost", "::1", "[::1]"})
# A callback request carries a lasso selection at most (tens of thousands of point ids: well under a MB);
# anything far larger is refused before Flask reads it into memory.
MAX_REQUEST_BYTES = 16 * 1024 * 1024


def create_app(
    store: str | os.PathLike[str] | None = None,
    *,
    poll_ms: int = 3000,
    stat_ttl: float = 1.0,
    run_lookup: bool = True,
    warm: bool = True,
    allowed_hosts: frozenset[str] | None = LOOPBACK_NAMES,
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
    _stay_a_local_app(app.server, allowed_hosts)
    if warm:
        threading.Thread(target=viewer.warm, name="viewer-warm", daemon=True).start()
    return app


def _stay_a_local_app(server: flask.Flask, allowed_hosts: frozenset[str] | None) -> None:
    """Request bodies are capped, and on a loopback bind a request whose ``Host`` is not a loopback name is
    refused: a web page elsewhere cannot reach the viewer by pointing its own DNS name at 127.0.0.1 (DNS
    rebinding). ``allowed_hosts=None`` (a bind to another interface) accepts any host name."""
    server.config["MAX_CONTENT_LENGTH"] = MAX_REQUEST_BYTES

    @server.before_request
    def only_local_host_names() -> None:
        if allowed_hosts is None:
            return
        host = flask.request.host.rsplit(":", 1)[0] if not flask.request.host.endswith("]") else flask.request.host
        if host not in allowed_hosts:
            flask.abort(403)


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
    local = host in LOOPBACK_NAMES
    app = create_app(store, allowed_hosts=LOOPBACK_NAMES | {host} if local else None)
    viewer = viewer_of(app)
    partitions = viewer.partitions()
    print(f"neural-sorter viewer on http://{host}:{port}/  (store {viewer.root}, {len(partitions)} partitions)")
    if host not in ("127.0.0.1", "localhost", "::1"):
        print("warning: the viewer has no authentication; it is now reachable from other machines")
    app.run(host=host, port=port, debug=debug, use_reloader=False)
