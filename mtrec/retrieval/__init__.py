"""mtrec.retrieval."""
