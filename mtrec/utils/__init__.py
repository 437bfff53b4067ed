"""mtrec.utils."""
