"""Every component id of the page, in one place: the layout, the views, the callbacks, the browser test and
the page's own JavaScript (``assets/*.js``) name components by these values.

Ids are strings (or, for components created by callbacks, pattern dicts whose ``type`` is given here).
"""

from __future__ import annotations

from typing import Any

# ---- stores and timers (no pixels)
VERSION = "version"  # {"partition", "version"} of the data on screen
SHOWN = "shown"  # the version the header and filters were last filled for
SELECTED = "selected"  # {"partition", "idx", "path"} of the selected file
RESULTS = "results"  # the standing "more like this" / text query and its ranked ids
LASSO = "lasso"  # {"drawn", "points"} of the 2D lasso
DRAWN_3D = "drawn-3d"  # the inputs the 3D map was drawn from (to map events back to ids)
DRAWN_2D = "drawn-2d"
MARKED_3D = "marked-3d"  # what the highlight traces of the 3D map show
MARKED_2D = "marked-2d"
BUILT_GALLERY = "built-gallery"
GALLERY_LIMITS = "gallery-limits"
PICKED = "picked"  # relative paths picked (gallery or map clicks) for a move
CORR_SEEN = "corr-seen"  # the state of the last re-sort the page reported
POLL = "poll"
DOWNLOAD = "download"

# ---- header
PARTITION = "partition"  # the partition picker
RUN_INFO = "run-info"
FILE_COUNT = "file-count"
RELOAD_NOTE = "reload-note"

# ---- sidebar
COLOR_BY = "color-by"
FILTER_CLUSTER = "filter-cluster"
FILTER_CATEGORY = "filter-category"
FILTER_NAME = "filter-name"
FILTER_FLAGS = "filter-flags"  # quality flags (files with any of them)
TEXT_QUERY = "text-query"
TEXT_SEARCH = "text-search"
SEARCH_MESSAGE = "search-message"
LASSO_SUMMARY = "lasso-summary"
DOWNLOAD_SELECTION = "download-selection"

# ---- sidebar: hand corrections
CORR_CLUSTER = "corr-cluster"  # cluster to rename
CORR_NAME = "corr-name"
CORR_RENAME = "corr-rename"
CORR_MERGE_FROM = "corr-merge-from"
CORR_MERGE_INTO = "corr-merge-into"
CORR_MERGE = "corr-merge"
CORR_MOVE_TO = "corr-move-to"
CORR_MOVE_NEW = "corr-move-new"  # or a new cluster of this name
CORR_MOVE = "corr-move"
CORR_MESSAGE = "corr-message"
CORR_LIST = "corr-list"
CORR_APPLY = "corr-apply"
CORR_STATUS = "corr-status"

# ---- centre: the maps, the gallery and the results
VIEW = "view"  # 3d | 2d | gallery | duplicates
COUNT = "count"
MAP_3D = "map-3d"
MAP_2D = "map-2d"
TIP_3D = "tip-3d"
TIP_2D = "tip-2d"
PANE_3D = "pane-3d"
PANE_2D = "pane-2d"
PANE_GALLERY = "pane-gallery"
PANE_DUPLICATES = "pane-duplicates"  # the duplicate groups, copies side by side
DUP_MESSAGE = "dup-message"  # what the last keep choice did
BUILT_DUPLICATES = "built-duplicates"
RESULTS_CARD = "results-card"
RESULTS_TITLE = "results-title"
RESULTS_BODY = "results-body"
DOWNLOAD_RESULTS = "download-results"
CLEAR_RESULTS = "clear-results"

# ---- detail panel
DETAIL = "detail"
DETAIL_NAME = "detail-name"
DETAIL_PATH = "detail-path"
DETAIL_COPIES = "detail-copies"
DETAIL_FLAGS = "detail-flags"
MORE_LIKE_THIS = "more-like-this"
PICK = "pick"  # add / remove the selected file to the files to move

# ---- pattern-matching ids of components made by callbacks
THUMB = "thumb"  # {"type": THUMB, "where": ..., "idx": point id}
GALLERY_MORE = "gallery-more"  # {"type": GALLERY_MORE, "group": group key}
CORR_REMOVE = "corr-remove"  # {"type": CORR_REMOVE, "id": correction id}
KEEP = "keep"  # {"type": KEEP, "idx": point id}: keep this copy of its duplicate group


def thumb(where: str, idx: int) -> dict[str, Any]:
    return {"type": THUMB, "where": where, "idx": int(idx)}


def gallery_more(group: str) -> dict[str, Any]:
    return {"type": GALLERY_MORE, "group": group}


def corr_remove(correction_id: str) -> dict[str, Any]:
    return {"type": CORR_REMOVE, "id": str(correction_id)}


def keep(idx: int) -> dict[str, Any]:
    return {"type": KEEP, "idx": int(idx)}
