"""Where evidence lives and how it is found again.

- Sealed WARC files: ``warc`` writes and seals them; ``readback`` reads a record back by offset and checks its digest.
- Blobs: one interface (``blobs``), one module per engine (``local``: a directory, ``s3``: a bucket with Object
  Lock), the engine chosen once by ``blobs.from_url``. Nothing here imports boto3 until an S3 store is asked for,
  so commands on a local archive never pay for it.
- The index of what the WARCs hold (``index``), the archive directory (``archive``) and each item's state
  (``items``).
"""
