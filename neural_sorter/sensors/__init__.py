"""Sensors and schedules: re-sorts that run by themselves."""
