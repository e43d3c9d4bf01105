"""Everything the viewer knows about the store: which partitions exist, their tables, thumbnails and searches.

The viewer only ever reads the store through ``neural_sorter.store.Store`` (the one statement of the layout)
and names assets by the constants of ``neural_sorter.tables``; it never opens the user's original files, so it
works on a copy of the store or on ``s3://`` just the same. Tables are cached per partition and keyed by the
stamps of every table they came from, so a newer materialization is picked up by the next request without a
restart and an unchanged one is never parsed twice.

Point ids are row positions in the partition's ``3d_projection`` table. They are the only thing the browser
ever sends back (hover, click, lasso, thumbnail URLs); paths stay on the server.

One module per concern:

- ``catalog``: ``ViewerStore``, the store listing (partitions, sources, stamps, versions) and the caches;
- ``partition``: ``PartitionData`` (one partition aligned on its projection) and the sidebar filters;
- ``tables``: reading the asset tables and aligning them on the projection's rows;
- ``thumbnails``: the row-group thumbnail cache of ``decoded_frames``;
- ``search``: nearest neighbours, "more like this" and CLIP text search;
- ``export``: the CSV of chosen points;
- ``provenance``: the Dagster run behind a materialization;
- ``corrections``: hand corrections previewed on the points, their status, and Apply's re-sort runner.
- ``duplicates``: one picture per duplicate group, the groups for the review, flag counts and a file's flag scores.
"""

from dash_viewer.data.catalog import VIEW_ASSETS, ViewerStore
from dash_viewer.data.export import selection_csv
from dash_viewer.data.partition import (
    NO_CATEGORY,
    UNCLUSTERED,
    Materialization,
    PartitionData,
    filter_mask,
    top_categories,
)
from dash_viewer.data.search import (
    TextSearchUnavailable,
    clip_model_id,
    nearest,
    neighbours,
    text_query_vector,
    text_search,
)
from dash_viewer.data.thumbnails import SMALL_THUMBNAIL, shrink_jpeg

__all__ = [
    "NO_CATEGORY",
    "SMALL_THUMBNAIL",
    "UNCLUSTERED",
    "VIEW_ASSETS",
    "Materialization",
    "PartitionData",
    "TextSearchUnavailable",
    "ViewerStore",
    "clip_model_id",
    "filter_mask",
    "nearest",
    "neighbours",
    "selection_csv",
    "shrink_jpeg",
    "text_query_vector",
    "text_search",
    "top_categories",
]
