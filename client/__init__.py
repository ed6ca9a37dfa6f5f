"""Site client: ingest and de-identification, DP adapter training, audit, signed releases."""
