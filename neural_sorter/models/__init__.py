"""Embedding models, one per module."""
