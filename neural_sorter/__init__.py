"""neural-sorter: sort folders of images and videos by what they look like."""

__version__ = "0.1.0"
