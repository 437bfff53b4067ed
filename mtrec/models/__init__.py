"""Multi-task models, selectable by name in config (`model.kind`)."""

from mtrec.models.base import MultiTaskModel
from mtrec.models.mmoe import MMoE
from mtrec.models.omoe import OMoE
from mtrec.models.ple import CGC, PLE
from mtrec.models.shared_bottom import SharedBottom
from mtrec.models.single_task import SingleTask

#: Model kinds by config name.
MODEL_KINDS: dict[str, type[MultiTaskModel]] = {
    "single_task": SingleTask,
    "shared_bottom": SharedBottom,
    "mmoe": MMoE,
    "omoe": OMoE,
    "cgc": CGC,
    "ple": PLE,
}

__all__ = ["MultiTaskModel", "SingleTask", "SharedBottom", "MMoE", "OMoE", "CGC", "PLE", "MODEL_KINDS"]
