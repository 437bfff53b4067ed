"""mtrec.tasks."""
