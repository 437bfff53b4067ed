"""mtrec.training."""
