"""Test helper: Hugging Face `transformers`' TimeSformer with random weights (built offline from a small config), its
names mapped to the reference's (facebookresearch/TimeSformer) by a table written here, independently of
`vmp_jax.convert.timesformer`, and a PyTorch port of the official VMPs layer (q1xiangchen/VMPs `vmps.py`)."""

import re
import sys

import numpy as np
import pytest

# Hugging Face layer module -> the reference's Block module.
HF_TO_REFERENCE_BLOCK = {
    "layernorm_before": "norm1",
    "attention.attention.qkv": "attn.qkv",
    "attention.output.dense": "attn.proj",
    "temporal_layernorm": "temporal_norm1",
    "temporal_attention.attention.qkv": "temporal_attn.qkv",
    "temporal_attention.output.dense": "temporal_attn.proj",
    "temporal_dense": "temporal_fc",
    "layernorm_after": "norm2",
    "intermediate.dense": "mlp.fc1",
    "output.dense": "mlp.fc2",
}
HF_TO_REFERENCE_TOP = {
    "timesformer.embeddings.cls_token": "cls_token",
    "timesformer.embeddings.position_embeddings": "pos_embed",
    "timesformer.embeddings.time_embeddings": "time_embed",
    "timesformer.embeddings.patch_embeddings.projection.weight": "patch_embed.proj.weight",
    "timesformer.embeddings.patch_embeddings.projection.bias": "patch_embed.proj.bias",
    "timesformer.layernorm.weight": "norm.weight",
    "timesformer.layernorm.bias": "norm.bias",
    "classifier.weight": "head.weight",
    "classifier.bias": "head.bias",
}


def to_reference(name):
    m = re.fullmatch(r"timesformer\.encoder\.layer\.(\d+)\.(.+)\.(weight|bias)", name)
    if m:
        return f"blocks.{m[1]}.{HF_TO_REFERENCE_BLOCK[m[2]]}.{m[3]}"
    return HF_TO_REFERENCE_TOP[name]


def from_reference(name):
    m = re.fullmatch(r"blocks\.(\d+)\.(.+)\.(weight|bias)", name)
    if m:
        block = {v: k for k, v in HF_TO_REFERENCE_BLOCK.items()}
        return f"timesformer.encoder.layer.{m[1]}.{block[m[2]]}.{m[3]}"
    return {v: k for k, v in HF_TO_REFERENCE_TOP.items()}[name]


def import_transformers():
    """`transformers`, or skip. Imported with any torchvision stand-in (tests/pytorchvideo_x3d.py registers one, with
    no import spec, for PyTorchVideo) hidden: transformers probes `find_spec('torchvision')` on import, which raises
    for a module without a spec; it caches the answer (no torchvision), which is what this test environment has."""
    stand_ins = {
        name: sys.modules.pop(name)
        for name in ("torchvision", "torchvision.ops")
        if name in sys.modules and getattr(sys.modules[name], "__spec__", None) is None
    }
    try:
        return pytest.importorskip("transformers")
    finally:
        sys.modules.update(stand_ins)


def random_timesformer(
    depth=2,
    width=64,
    heads=4,
    image_size=32,
    patch=8,
    frames=4,
    num_classes=5,
    attention_type="divided_space_time",
    seed=0,
):
    """An eval-mode `TimesformerForVideoClassification` with every parameter random (the zero-initialised
    temporal_fc and time embeddings included, so that they matter)."""
    torch = pytest.importorskip("torch")
    transformers = import_transformers()
    config = transformers.TimesformerConfig(
        image_size=image_size,
        patch_size=patch,
        num_channels=3,
        num_frames=frames,
        hidden_size=width,
        num_hidden_layers=depth,
        num_attention_heads=heads,
        intermediate_size=4 * width,
        hidden_act="gelu",
        layer_norm_eps=1e-6,
        qkv_bias=True,
        attention_type=attention_type,
        num_labels=num_classes,
    )
    torch.manual_seed(seed)
    net = transformers.TimesformerForVideoClassification(config).eval()
    rng = np.random.default_rng(seed)
    with torch.no_grad():
        for name, p in net.named_parameters():
            scale = 1.0 if name.endswith("layernorm_before.weight") else 0.3
            p.copy_(torch.tensor(rng.normal(0, scale, p.shape), dtype=torch.float32))
    return net


def hf_logits(net, clips):
    """clips: (B, T, H, W, 3) float NumPy -> logits (B, K) NumPy; HF takes (B, T, 3, H, W)."""
    import torch  # pylint: disable=import-outside-toplevel

    with torch.no_grad():
        return net(pixel_values=torch.tensor(clips.transpose(0, 1, 4, 2, 3))).logits.numpy()


def reference_state_dict(net):
    """The HF model's weights under the reference's names (NumPy)."""
    return {to_reference(k): v.numpy() for k, v in net.state_dict().items()}


def vmps_layer(m, n):
    """The official VMPs layer (q1xiangchen/VMPs timesformer/models/vmps.py, eval mode, BGR luma weights applied
    to the channels as given) as a torch module with parameters m, n of shape (1,)."""
    import torch  # pylint: disable=import-outside-toplevel

    class VideoMotionPrompt(torch.nn.Module):
        def __init__(self):
            super().__init__()
            self.m = torch.nn.Parameter(torch.tensor([m], dtype=torch.float32))
            self.n = torch.nn.Parameter(torch.tensor([n], dtype=torch.float32))

        def forward(self, video):  # (B, C, T, H, W) standardised
            seq = video.permute(0, 2, 1, 3, 4)
            grey = torch.einsum("btchw,c->bthw", seq * 0.225 + 0.45, torch.tensor([0.114, 0.587, 0.299]))
            diff = grey[:, 1:] - grey[:, :-1]
            att = 1 / (
                1 + torch.exp(-(5 / (0.45 * torch.abs(torch.tanh(self.m)) + 1e-1)) * (diff - 0.6 * torch.tanh(self.n)))
            )
            prompt = att.unsqueeze(2).repeat(1, 1, 3, 1, 1) * seq[:, 1:]
            return prompt.permute(0, 2, 1, 3, 4)

    return VideoMotionPrompt()
