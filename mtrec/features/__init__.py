"""mtrec.features."""
