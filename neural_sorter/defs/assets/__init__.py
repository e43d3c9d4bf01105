"""One module per asset, each named after it."""
