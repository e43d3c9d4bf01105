"""The neural-sorter viewer: a Dash app over the Parquet store (``python -m dash_viewer``)."""
