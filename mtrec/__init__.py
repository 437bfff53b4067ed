"""mtrec: multi-task learning for recommendations and tabular prediction on Keras 3.

The public API is re-exported here::

    import mtrec
    config = mtrec.load_config("configs/quickstart.yaml")
    result = mtrec.train(config, "runs/demo")
    mtrec.score_file("runs/demo", "rows.parquet", "scores.parquet")
"""

__version__ = "0.1.0"

from mtrec.analysis import (
    CollapseThresholds, analyze_gates, analyze_run_gates, check_collapse, label_correlation,
    transfer_between_runs, transfer_report,
)
from mtrec.config import ExperimentConfig, load_config, parse_config
from mtrec.data import SplitConfig, make_splits, make_synthetic, read_table
from mtrec.errors import ConfigError, DataError, MtrecError, NotFittedError, SchemaError
from mtrec.features import (
    CategoricalFeature, FeatureEncoder, MultiCategoricalFeature, NumericFeature, parse_features,
)
from mtrec.layers import MLP, ExpertBank, FeatureEmbedding, MixtureOfExperts, SoftmaxGate, TaskTower
from mtrec.models import MMoE, MODEL_KINDS, MultiTaskModel, SharedBottom, SingleTask
from mtrec.recommend import Blend, BlendConfig, RecommendConfig, load_recommend_config
from mtrec.retrieval import CandidateIndex, RetrievalConfig, train_retrieval
from mtrec.scoring import predict_arrays, score_file, score_frame
from mtrec.tasks import BinaryTask, MulticlassTask, RegressionTask, Task
from mtrec.training.run import RunResult, train
from mtrec.training.trained_run import TrainedRun, load_run
from mtrec.weighting import (
    MGDA, WEIGHTING_KINDS, DynamicWeightAverage, GradNorm, PCGrad, StaticWeighting, UncertaintyWeighting,
    WeightingStrategy, per_task_gradients, split_variables,
)

__all__ = [
    "CollapseThresholds", "analyze_gates", "analyze_run_gates", "check_collapse", "label_correlation",
    "transfer_between_runs", "transfer_report",
    "ExperimentConfig", "load_config", "parse_config",
    "SplitConfig", "make_splits", "make_synthetic", "read_table",
    "ConfigError", "DataError", "MtrecError", "NotFittedError", "SchemaError",
    "CategoricalFeature", "FeatureEncoder", "MultiCategoricalFeature", "NumericFeature", "parse_features",
    "MLP", "ExpertBank", "FeatureEmbedding", "MixtureOfExperts", "SoftmaxGate", "TaskTower",
    "MMoE", "MODEL_KINDS", "MultiTaskModel", "SharedBottom", "SingleTask",
    "Blend", "BlendConfig", "RecommendConfig", "load_recommend_config",
    "CandidateIndex", "RetrievalConfig", "train_retrieval",
    "predict_arrays", "score_file", "score_frame",
    "BinaryTask", "MulticlassTask", "RegressionTask", "Task",
    "RunResult", "train", "TrainedRun", "load_run",
    "WEIGHTING_KINDS", "WeightingStrategy", "StaticWeighting", "UncertaintyWeighting", "DynamicWeightAverage",
    "GradNorm", "PCGrad", "MGDA", "per_task_gradients", "split_variables",
]
