"""Small helpers shared across segkit (atomic file writes)."""
