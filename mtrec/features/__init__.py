"""mtrec.features: feature specs and the fitted encoder that turns raw columns into model inputs.

Public names:
    FeatureEncoder: fits vocabularies and statistics on the training split,
        encodes any split, describes the embedding layout.
    PartialFit: the mergeable state of `FeatureEncoder.partial_fit`, for
        fitting a table batch by batch (`finish_fit` ends the fit).
    NumericFeature, CategoricalFeature, MultiCategoricalFeature, TextFeature: the specs.
    internal_names: valid Keras/TensorFlow names derived from any column name.
    parse_features: config mappings (from YAML) to specs, with clear errors.
"""

from mtrec.features.encoder import FeatureEncoder
from mtrec.features.numeric import NumericColumn
from mtrec.features.partial import PartialFit
from mtrec.features.specs import (
    FEATURE_KINDS,
    NUMERIC_KEY,
    CategoricalFeature,
    FeatureSpec,
    MultiCategoricalFeature,
    NumericFeature,
    TextFeature,
    parse_features,
)
from mtrec.features.names import internal_names
from mtrec.features.vocabulary import MISSING, OOV_ID, PAD_ID, Vocabulary

__all__ = [
    "FEATURE_KINDS",
    "MISSING",
    "NUMERIC_KEY",
    "OOV_ID",
    "PAD_ID",
    "CategoricalFeature",
    "FeatureEncoder",
    "FeatureSpec",
    "MultiCategoricalFeature",
    "NumericColumn",
    "NumericFeature",
    "PartialFit",
    "TextFeature",
    "Vocabulary",
    "internal_names",
    "parse_features",
]
