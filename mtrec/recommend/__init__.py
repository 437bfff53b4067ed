"""mtrec.recommend: recommendations end to end (retrieval -> multi-task ranking -> blend -> top N).

Modules:
    config        RecommendConfig: the YAML of `mtrec recommend` (data, retrieval, negatives,
                  ranking, blend, output, evaluation)
    interactions  loading interactions/users/items, the held-out split, feature joins, popularity
    ranking       the ranker's rows (click negatives sampled from retrieval candidates) and scores
    blend         task scores -> one ranking score (weighted sum or product); top N per user
    metrics       Recall@N, NDCG@N, MRR@N on held-out interactions
    stages        `recommend(config, run_dir)`: the batch job's stages and its run directory
"""

from mtrec.recommend.blend import Blend, BlendConfig, top_n
from mtrec.recommend.config import RecommendConfig, load_recommend_config, parse_recommend_config
from mtrec.recommend.metrics import ranking_metrics
from mtrec.recommend.stages import RecommendResult, recommend

__all__ = [
    "Blend", "BlendConfig", "RecommendConfig", "RecommendResult", "load_recommend_config",
    "parse_recommend_config", "ranking_metrics", "recommend", "top_n",
]
