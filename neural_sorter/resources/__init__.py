"""Dagster resources: what every asset needs from the environment, chosen per deployment."""
