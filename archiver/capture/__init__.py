"""Ways of capturing. Each module takes a URL, settings and an open CaptureWarc, writes the exchange records
and resources it made, and returns a CaptureResult. Capture modules never touch the index."""
from archiver.capture.base import CaptureResult

__all__ = ["CaptureResult"]
