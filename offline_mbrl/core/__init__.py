"""The bottom layer, used by every other: the artefact store (`cache`), errors, paths, the one progress
API, console helpers, thread settings and the ensemble layers (`nets`). It imports nothing of the suite's."""
