"""Keras 3 layers (keras.ops only), one public class per module, all serializable."""

from mtrec.layers.cross_expert_bank import CrossExpertBank
from mtrec.layers.cross_stitch import CrossStitchUnit
from mtrec.layers.expert_bank import ExpertBank
from mtrec.layers.expert_kinds import EXPERT_KINDS, make_expert_bank
from mtrec.layers.extraction_level import ExtractionLevel
from mtrec.layers.feature_embedding import FeatureEmbedding
from mtrec.layers.mixture_of_experts import MixtureOfExperts
from mtrec.layers.mlp import MLP
from mtrec.layers.softmax_gate import SoftmaxGate
from mtrec.layers.task_tower import TaskTower

__all__ = ["MLP", "ExpertBank", "SoftmaxGate", "TaskTower", "FeatureEmbedding", "MixtureOfExperts", "ExtractionLevel", "CrossStitchUnit",
           "CrossExpertBank", "EXPERT_KINDS", "make_expert_bank"]
