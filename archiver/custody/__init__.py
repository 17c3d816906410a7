"""Chain of custody: the hash-chained ledger, the archive's signing keys, RFC 3161 timestamps, fixity
verification and rebuilding the index from the WARCs alone."""
