"""archiver: capture what a URL shows into sealed, hashed WARC files, with an SQLite index of provenance."""
