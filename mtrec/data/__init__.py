"""mtrec.data."""
