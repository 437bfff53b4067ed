"""Multi-task models, selectable by name in config (`model.kind`)."""

from mtrec.models.base import MultiTaskModel
from mtrec.models.bottom_model import BottomModel
from mtrec.models.cgc import CGC
from mtrec.models.cross_stitch import CrossStitch
from mtrec.models.ensemble import SeedEnsemble  # model.ensemble: k (not a kind: wraps k trained models)
from mtrec.models.gated import GatedModel
from mtrec.models.mmoe import MMoE
from mtrec.models.omoe import OMoE
from mtrec.models.ple import PLE
from mtrec.models.shared_bottom import SharedBottom
from mtrec.models.single_task import SingleTask
from mtrec.models.soft_sharing import SoftSharing

#: Model kinds by config name.
MODEL_KINDS: dict[str, type[MultiTaskModel]] = {
    "single_task": SingleTask,
    "shared_bottom": SharedBottom,
    "mmoe": MMoE,
    "omoe": OMoE,
    "cgc": CGC,
    "ple": PLE,
    "soft_sharing": SoftSharing,
    "cross_stitch": CrossStitch,
}

__all__ = ["MultiTaskModel", "BottomModel", "GatedModel", "SingleTask", "SharedBottom", "MMoE", "OMoE", "CGC", "PLE", "SoftSharing", "CrossStitch", "SeedEnsemble", "MODEL_KINDS"]
