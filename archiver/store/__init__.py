"""Where sealed WARCs live: one interface (``blobs``), one module per engine (``local``: a directory, ``s3``: a
bucket with Object Lock), the engine chosen once by ``blobs.from_url``. Nothing here imports boto3 until an S3
store is asked for, so commands on a local archive never pay for it."""
