"""Argument checks of :func:`vgrad.depth_sweep`, with messages naming what it accepts."""

from __future__ import annotations

from collections.abc import Mapping

import numpy as np


def check_depths(depths, default):
    """Return ``depths`` (``default`` when None) as a 1-d int array of values >= 1."""
    depths = np.asarray(default if depths is None else depths)
    if (
        depths.ndim != 1
        or depths.size == 0
        or not np.issubdtype(depths.dtype, np.integer)
        or depths.min() < 1
    ):
        raise ValueError(
            f"depths must be a non-empty sequence of ints >= 1, got {depths.tolist()!r}"
        )
    return depths.astype(int)


def check_configs(configs, default):
    """Return ``configs`` (``default`` when None): {str label: build_mlp keyword dict}."""
    configs = default if configs is None else configs
    if not isinstance(configs, Mapping) or not configs:
        raise TypeError(
            "configs must be a non-empty dict {label: build_mlp keyword arguments}, "
            f"got {configs!r}"
        )
    for label, config in configs.items():
        if not isinstance(label, str) or not isinstance(config, Mapping):
            raise TypeError(
                "configs must map str labels to dicts of build_mlp keyword arguments; "
                f"got {label!r}: {config!r}"
            )
        taken = {"depth", "width", "seed", "input_dim", "num_classes"} & set(config)
        if taken:
            raise ValueError(
                f"configs[{label!r}] sets {sorted(taken)}, which depth_sweep sets itself"
            )
    return configs


def check_sweep_data(x, y):
    """Return ``(x, y)``: a (num_samples >= 2, num_features) float32 batch and its labels."""
    if x is None or y is None:
        raise TypeError("x and y must be arrays: a batch of inputs and its integer labels")
    x, y = np.asarray(x, dtype=np.float32), np.asarray(y)
    if x.ndim != 2 or len(x) < 2:
        raise ValueError(f"x must be a (num_samples >= 2, num_features) array, got shape {x.shape}")
    if y.shape != (len(x),) or not np.issubdtype(y.dtype, np.integer) or y.min() < 0:
        raise ValueError(
            f"y must hold {len(x)} integer labels >= 0, one per row of x; "
            f"got shape {y.shape}, dtype {y.dtype}"
        )
    return x, y
