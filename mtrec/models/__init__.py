"""mtrec.models."""
