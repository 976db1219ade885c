"""Shared test support: skipping (or, in CI, failing) when a system component is missing."""
