"""mtrec.layers."""
