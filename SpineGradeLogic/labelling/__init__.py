"""Vertebra labelling: instances from masks, ordered along the spine, named by a sequence decoder.

Typical use (the network gives a body mask, a sacrum mask and per-voxel level probabilities)::

    instances = instances_from_masks(body, sacrum, level_probs)
    labelling = label_instances(instances)
    labelling.vertebrae, labelling.warnings
"""

from .decoder import Decoded, DecoderPriors, decode
from .evidence import combine, dens_evidence, evidence_for, sacrum_evidence
from .instances import SpineInstance, instances_from_label_map, instances_from_masks, mean_probabilities, one_hot_evidence
from .label import Labelling, label_from_label_map, label_instances, named_label_map
from .ordering import SpineOrder, order_along_spine

__all__ = [
    "Decoded",
    "DecoderPriors",
    "decode",
    "combine",
    "dens_evidence",
    "evidence_for",
    "sacrum_evidence",
    "SpineInstance",
    "instances_from_label_map",
    "instances_from_masks",
    "mean_probabilities",
    "one_hot_evidence",
    "Labelling",
    "label_from_label_map",
    "label_instances",
    "named_label_map",
    "SpineOrder",
    "order_along_spine",
]
