"""MOREC (Luo et al., ICLR 2024): `algorithm` (the filter in the loop, its configs and specs), `reward`
(the learned dynamics reward), `filter` (the reward-consistency filter)."""

from offline_mbrl.algorithms.morec.algorithm import SPEC_MOBILE, SPEC_MOPO

__all__ = ["SPEC_MOBILE", "SPEC_MOPO"]
