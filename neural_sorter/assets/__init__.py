"""Software-defined assets, grouped by stage. Each is a thin wrapper over plain functions."""
