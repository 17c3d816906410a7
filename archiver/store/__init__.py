"""Where evidence lives and how it is found again.

- Sealed WARC files: ``warc`` writes and seals them; ``readback`` reads a record back by offset and checks its digest.
- Blobs: one interface (``blobs``), one module per engine (``local``: a directory, ``s3``: a bucket with Object
  Lock), the engine chosen once by ``blobs.from_url``. Nothing here imports boto3 until an S3 store is asked for,
  so commands on a local archive never pay for it.
- The index of what the WARCs hold: one interface (``index.Index``), one module per engine (``engines/sqlite``: the
  file <archive>/index.db; ``engines/postgres``: a shared PostgreSQL database, team mode), the engine chosen once by
  ``engines.open_index`` from ``[index] url``. psycopg is imported only for a team-mode archive.
- The archive directory (``archive``) and each item's state (``items``).
"""
