"""vidpipe: raw video to YouTube-8M features, models and labels."""

__version__ = "0.1.0"
