"""Test helper: PyTorchVideo's X3D with random weights, importable without torchvision.

PyTorchVideo 0.1.5 imports `torchvision.ops.RoIAlign` at module level only for its detection heads; when
torchvision is absent a stand-in module is registered so that `pytorchvideo.models.x3d` imports (X3D never uses it).
"""

import importlib.util
import re
import sys
import types

import numpy as np
import pytest


def create_x3d():
    """PyTorchVideo's `create_x3d`, or skip the test when torch/pytorchvideo are not installed."""
    pytest.importorskip("torch")
    if "torchvision" not in sys.modules and importlib.util.find_spec("torchvision") is None:
        tv, ops = types.ModuleType("torchvision"), types.ModuleType("torchvision.ops")
        ops.RoIAlign = type("RoIAlign", (), {})  # never instantiated by X3D
        tv.ops = ops
        sys.modules["torchvision"], sys.modules["torchvision.ops"] = tv, ops
    return pytest.importorskip("pytorchvideo.models.x3d").create_x3d


def random_x3d(variant, clip_length, crop_size, num_classes=400, seed=0, shortcut_bn=False):
    """An eval-mode PyTorchVideo X3D with random weights *and* random BN statistics (default ones are trivial).

    `shortcut_bn=True` adds the BN PySlowFast has on the stage-1 block-0 shortcut (`ResBlock.forward` applies
    `branch1_norm` whenever it is set), which makes the module PySlowFast's network.
    """
    import torch  # pylint: disable=import-outside-toplevel

    torch.manual_seed(seed)
    net = create_x3d()(
        input_clip_length=clip_length,
        input_crop_size=crop_size,
        model_num_class=num_classes,
        depth_factor={"l": 5.0, "xxs": 0.2}.get(variant, 2.2),
        head_activation=None,
    )
    if shortcut_bn:
        net.blocks[1].res_blocks[0].branch1_norm = torch.nn.BatchNorm3d(24, eps=1e-5, momentum=0.1)
    return randomise_batchnorm_and_head(net, net.blocks[5].proj, seed + 1)


def randomise_batchnorm_and_head(net, head, seed):
    """Random BN affine parameters and statistics (PyTorch's are 1 and 0: a conversion that swapped or dropped them
    would still pass), and a classifier `head` of larger weights than the default N(0, 0.01), whose tiny logits would
    make a relative check meaningless. Returns `net` in eval mode."""
    import torch

    g = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for m in net.modules():
            if isinstance(m, torch.nn.BatchNorm3d):
                m.weight.uniform_(0.5, 1.5, generator=g)
                m.bias.normal_(0.0, 0.1, generator=g)
                m.running_mean.normal_(0.0, 0.1, generator=g)
                m.running_var.uniform_(0.5, 1.5, generator=g)
        head.weight.normal_(0.0, 0.05, generator=g)
    return net.eval()


# PyTorchVideo -> PySlowFast module names, written independently of vmp_jax.convert's table.
_TO_SLOWFAST = [
    (r"^blocks\.0\.conv\.conv_t\.", "s1.pathway0_stem.conv_xy."),
    (r"^blocks\.0\.conv\.conv_xy\.", "s1.pathway0_stem.conv."),
    (r"^blocks\.0\.norm\.", "s1.pathway0_stem.bn."),
    (r"^blocks\.5\.pool\.pre_conv\.", "head.conv_5."),
    (r"^blocks\.5\.pool\.pre_norm\.", "head.conv_5_bn."),
    (r"^blocks\.5\.pool\.post_conv\.", "head.lin_5."),
    (r"^blocks\.5\.proj\.", "head.projection."),
    (r"\.branch2\.norm_b\.1\.block\.0\.", ".branch2.se.fc1."),
    (r"\.branch2\.norm_b\.1\.block\.2\.", ".branch2.se.fc2."),
    (r"\.branch2\.norm_b\.0\.", ".branch2.b_bn."),
    (r"\.branch2\.conv_([abc])\.", r".branch2.\1."),
    (r"\.branch2\.norm_([abc])\.", r".branch2.\1_bn."),
    (r"\.branch1_conv\.", ".branch1."),
    (r"\.branch1_norm\.", ".branch1_bn."),
]


def slowfast_key(key):
    for pattern, repl in _TO_SLOWFAST:
        key = re.sub(pattern, repl, key)
    m = re.match(r"^blocks\.([1-4])\.res_blocks\.(\d+)\.(.*)$", key)
    return f"s{int(m.group(1)) + 1}.pathway0_res{m.group(2)}.{m.group(3)}" if m else key


def to_slowfast(state_dict):
    """A PyTorchVideo X3D state dict renamed to PySlowFast's keys, wrapped in `model_state` like its checkpoints."""
    return {"model_state": {slowfast_key(k): v for k, v in state_dict.items()}}


def torch_logits(net, clips_cl):
    """Eval logits of a PyTorch model for channels-last clips (B, T, H, W, 3)."""
    import torch  # pylint: disable=import-outside-toplevel

    with torch.no_grad():
        return net(torch.from_numpy(np.ascontiguousarray(clips_cl.transpose(0, 4, 1, 2, 3)))).numpy()
