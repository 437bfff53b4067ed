"""mtrec: multi-task learning for recommendations and tabular prediction on Keras 3."""

__version__ = "0.1.0"
