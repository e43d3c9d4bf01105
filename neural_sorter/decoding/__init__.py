"""Turning image and video files into small RGB thumbnails."""
