"""Keras 3 layers (keras.ops only), one public class per module, all serializable.

`ExpertSpec` and `BottomSpec` (`specs.py`) are the serializable descriptions
of a model's experts and bottom MLPs that the layers and models take.
"""

from mtrec.layers.cross_expert_bank import CrossExpertBank
from mtrec.layers.cross_stitch import CrossStitchUnit
from mtrec.layers.expert_bank import ExpertBank
from mtrec.layers.extraction_level import ExtractionLevel
from mtrec.layers.feature_embedding import FeatureEmbedding
from mtrec.layers.mixture_of_experts import MixtureOfExperts
from mtrec.layers.mlp import MLP
from mtrec.layers.numeric_embedding import NumericEmbedding
from mtrec.layers.softmax_gate import SoftmaxGate
from mtrec.layers.specs import EXPERT_KINDS, BottomSpec, ExpertSpec
from mtrec.layers.task_tower import TaskTower

__all__ = ["MLP", "ExpertBank", "CrossExpertBank", "SoftmaxGate", "MixtureOfExperts", "ExtractionLevel",
           "TaskTower", "FeatureEmbedding", "NumericEmbedding", "CrossStitchUnit", "ExpertSpec", "BottomSpec", "EXPERT_KINDS"]
