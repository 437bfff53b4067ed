"""mtrec.scoring."""
