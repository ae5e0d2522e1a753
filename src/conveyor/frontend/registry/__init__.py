"""Schema registry: parsing, fingerprints and compatibility of topic schemas (issue 5)."""
