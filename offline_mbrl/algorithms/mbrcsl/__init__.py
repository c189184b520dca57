"""MBRCSL (Zhou et al., ICLR 2024): `algorithm` (the idea, config and spec), `behaviour` (the rollout
policy cloned from all the data), `rollouts` (collecting and keeping model rollouts), `policy` (the
return-conditioned output policy)."""

from offline_mbrl.algorithms.mbrcsl.algorithm import SPEC

__all__ = ["SPEC"]
