"""mtrec.analysis."""
