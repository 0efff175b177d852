"""Test helper: PyTorchVideo's SlowFast with random weights and random BN statistics, and its PySlowFast names.

Imports through `pytorchvideo_x3d.create_x3d`'s torchvision stand-in (PyTorchVideo 0.1.5 imports
`torchvision.ops.RoIAlign` at module level; SlowFast for classification never uses it).
"""

import re
import sys

import numpy as np
import pytest
from pytorchvideo_x3d import create_x3d, randomise_batchnorm_and_head


def create_slowfast():
    create_x3d()  # skips without torch/pytorchvideo; registers the torchvision stand-in when needed
    return pytest.importorskip("pytorchvideo.models.slowfast").create_slowfast


def random_slowfast(depth=50, alpha=4, fusion_kernel=7, num_classes=400, seed=0, width=64, stage_depths=None):
    """An eval-mode PyTorchVideo SlowFast with random weights *and* random BN statistics (default ones are trivial).

    Global average pooling in the head (PyTorchVideo's default AvgPool3d kernel fits 32x224² only; at that size
    both are the same). `width`/`stage_depths` build the small networks of the training tests (`stage_depths`
    through PyTorchVideo's depth table).
    """
    build = create_slowfast()
    import torch  # pylint: disable=import-outside-toplevel

    ptv = sys.modules[build.__module__]
    torch.manual_seed(seed)
    kwargs = {}
    if stage_depths is not None:
        ptv._MODEL_STAGE_DEPTH[-1] = tuple(stage_depths)  # pylint: disable=protected-access
        depth = -1
    if width != 64:
        kwargs["stem_dim_outs"] = (width, width // 8)
    net = build(
        model_depth=depth,
        model_num_class=num_classes,
        slowfast_fusion_conv_kernel_size=(fusion_kernel, 1, 1),
        slowfast_fusion_conv_stride=(alpha, 1, 1),
        head_pool=torch.nn.AdaptiveAvgPool3d,
        **kwargs,
    )
    ptv._MODEL_STAGE_DEPTH.pop(-1, None)  # pylint: disable=protected-access
    return randomise_batchnorm_and_head(net, net.blocks[6].proj, seed + 1)


# PyTorchVideo -> PySlowFast module names, written independently of vmp_jax.convert's table.
_RULES = [
    (r"^blocks\.0\.multipathway_blocks\.(\d)\.conv\.", r"s1.pathway\1_stem.conv."),
    (r"^blocks\.0\.multipathway_blocks\.(\d)\.norm\.", r"s1.pathway\1_stem.bn."),
    (r"^blocks\.6\.proj\.", "head.projection."),
    (r"\.multipathway_fusion\.conv_fast_to_slow\.", ".fuse.conv_f2s."),
    (r"\.multipathway_fusion\.norm\.", ".fuse.bn."),
    (r"\.branch2\.conv_([abc])\.", r".branch2.\1."),
    (r"\.branch2\.norm_([abc])\.", r".branch2.\1_bn."),
    (r"\.branch1_conv\.", ".branch1."),
    (r"\.branch1_norm\.", ".branch1_bn."),
]


def slowfast_key(key):
    for pattern, repl in _RULES:
        key = re.sub(pattern, repl, key)
    m = re.match(r"^blocks\.(\d)\.fuse\.(.*)$", key)
    if m:
        return f"s{int(m.group(1)) + 1}_fuse.{m.group(2)}"
    m = re.match(r"^blocks\.([1-4])\.multipathway_blocks\.(\d)\.res_blocks\.(\d+)\.(.*)$", key)
    return f"s{int(m.group(1)) + 1}.pathway{m.group(2)}_res{m.group(3)}.{m.group(4)}" if m else key


def to_pyslowfast(state_dict):
    """A PyTorchVideo SlowFast state dict renamed to PySlowFast's keys, wrapped in `model_state` like its files."""
    return {"model_state": {slowfast_key(k): v for k, v in state_dict.items()}}


def torch_logits(net, clips_cl, alpha):
    """Eval logits of PyTorchVideo's SlowFast for channels-last clips (B, T, H, W, 3), split like PackPathway."""
    import torch  # pylint: disable=import-outside-toplevel

    fast = torch.from_numpy(np.ascontiguousarray(clips_cl.transpose(0, 4, 1, 2, 3)))
    t = fast.shape[2]
    slow = torch.index_select(fast, 2, torch.linspace(0, t - 1, t // alpha).long())
    with torch.no_grad():
        return net([slow, fast]).numpy()
