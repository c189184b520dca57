"""Rows of the dataset table in datasets/README.md: size, episodes and behaviour return of local datasets.

    python benchmarks/dataset_stats.py hopper-random hopper-medium hopper-expert

Each name must already exist (`offline-mbrl datasets make NAME`); the make time is not stored in the
dataset, so the table's last column is filled in from the make command's own timing.
"""

from __future__ import annotations

import argparse

import numpy as np

from offline_mbrl.data.dataset import load_dataset


def row(name: str) -> str:
    ds = load_dataset(name)
    returns = ds.episode_returns
    score = ds.spec.normalize(returns.mean())
    norm = f" ({float(score):.1f})" if score is not None else ""
    return (
        f"| {name} | {len(ds):,} | {len(returns):,} | {returns.mean():.1f} ± {returns.std():.1f}{norm} "
        f"| {np.median(returns):.1f} |"
    )


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("names", nargs="+")
    args = p.parse_args()
    print("| dataset | transitions | episodes | mean return ± std (normalised) | median return |")
    print("| --- | --- | --- | --- | --- |")
    for name in args.names:
        print(row(name), flush=True)


if __name__ == "__main__":
    main()
