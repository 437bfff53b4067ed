"""mtrec.weighting."""
