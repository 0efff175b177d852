"""Every training key with its default; recipe configs start from `base_config()` and override.

Keys (see also vmp_jax.data.default_data_config for `data.*`):
  seed                     one integer seeds init, dropout and the data order
  num_frames               T, the number of prompts per clip (the loader reads T+1 frames when VMP is on)
  batch_size               global train batch over all devices and processes
  grad_accum_steps         k: each device runs its part of the batch as k micro-batches and steps once on the
                           mean gradient (the batch's); activation memory of batch_size / k clips
  eval_batch_size          global eval batch
  num_train_steps          > 0: train this many steps; else num_epochs x (train clips // batch_size)
  vmp_lambda               weight of the temporal attention variation in the loss
  model.backbone           a registered backbone ('x3d', 'timesformer', 'slowfast', 'tiny'); its arguments are
                           model.<name>.*
  model.backbone_module    import path of a module registering a backbone outside vmp_jax ('' = none)
  model.num_classes        0: take the data set's; otherwise must agree with it
  model.dtype              compute dtype ('bfloat16' = mixed precision; params and optimiser stay float32)
  model.bn_sync            BatchNorm statistics over 'global' (every device), 'host' (each process's devices: no
                           all-reduce across hosts) or 'none' (each device's own clips)
  model.vmp.pn             power normalisation: 'sigmoid' (the paper's; m, n) or 'gamma', 'maxexp', 'sigme',
                           'asinhe' (Koniusz & Zhang; one coefficient, initialised at pn_init_value, 0 = default)
  compilation_cache_dir    JAX's persistent compilation cache ('' = off): a rerun, a resume or the other hosts of a
                           run reuse compiled programs instead of compiling again (a local or shared directory)
  profile_steps            'A,B': a jax.profiler trace of train steps A..B in WORKDIR/profile ('' = none)
  init_checkpoint          PyTorch checkpoint (.pyth/.pt/...) of the backbone to initialise it from (X3D: PyTorchVideo/
                           PySlowFast; TimeSformer: the reference's, Hugging Face's or ImageNet ViT; a whole VMP
                           model's checkpoint also sets the motion prompt's params)
  eval_every_steps         evaluate every this many steps (0: only at the end) on data.eval_during_training_clips x
                           data.eval_during_training_crops views per video (1 x 1 by default); the last step also
                           runs the full test of data.eval_num_clips x data.eval_num_crops views (split 'test');
                           keep_best ranks checkpoints by the former's top-1
"""

import sys

import ml_collections

from vmp_jax.data.builders import default_data_config


def base_config() -> ml_collections.ConfigDict:
    config = ml_collections.ConfigDict()
    config.seed = 0
    config.num_frames = 16
    config.batch_size = 16
    config.grad_accum_steps = 1
    config.eval_batch_size = 16
    config.num_train_steps = 0
    config.num_epochs = 25.0
    config.vmp_lambda = 1.0
    config.log_every_steps = 50
    config.eval_every_steps = 1000  # 0: evaluate only at the end
    config.checkpoint_every_steps = 500
    config.keep_last = 2
    config.keep_best = 1
    config.progress_bar = True
    config.init_checkpoint = ""
    config.compilation_cache_dir = ""
    config.profile_steps = ""

    config.model = ml_collections.ConfigDict()
    config.model.backbone = "x3d"
    # Each backbone's fields live under its name, with the module's defaults (a test keeps them equal to the
    # registry's); `model.backbone` picks which ones are used.
    config.model.x3d = ml_collections.ConfigDict(dict(variant="s", dropout_rate=0.5, shortcut_bn_always=False))
    config.model.slowfast = ml_collections.ConfigDict(
        dict(
            depth=50,
            alpha=4,
            beta_inv=8,
            fusion_kernel=7,
            fusion_channel_ratio=2,
            stage_depths=(),
            width=64,
            dropout_rate=0.5,
        )
    )
    config.model.timesformer = ml_collections.ConfigDict(
        dict(
            depth=12,
            width=768,
            num_heads=12,
            patch_size=16,
            image_size=224,
            num_frames=8,
            attention_type="divided_space_time",
            mlp_ratio=4.0,
            drop_path_rate=0.1,
            attention_impl="xla",
            remat_policy="",
        )
    )
    config.model.tiny = ml_collections.ConfigDict(dict(width=8, dropout_rate=0.0))
    # Backbones registered in this process beyond those (a module outside vmp_jax registers itself when imported),
    # with their modules' defaults; the registry is not imported here, so loading a config loads no model code.
    registry = sys.modules.get("vmp_jax.models.registry")
    for name in registry.names() if registry else ():
        if name not in config.model:
            config.model[name] = ml_collections.ConfigDict(registry.entry(name).defaults)
    config.model.backbone_module = ""  # a module outside vmp_jax to import first: it registers model.backbone
    config.model.num_classes = 0
    config.model.dtype = "float32"
    config.model.bn_sync = "global"
    config.model.use_vmp = True
    config.model.vmp = ml_collections.ConfigDict(
        dict(
            luma="rgb",
            parametrization="scalar",
            m_init_mean=1e-5,
            m_init_std=1.0,
            n_init_mean=1e-5,
            n_init_std=1.0,
            pn="sigmoid",
            pn_init_value=0.0,
            pn_init_log_std=0.0,
        )
    )

    config.optimizer = ml_collections.ConfigDict(
        dict(
            name="sgd",
            momentum=0.9,
            nesterov=False,
            weight_decay=1e-4,
            decay_norm_and_bias=False,
            decay_vmp=False,
            clip_grad_norm=0.0,
        )
    )
    config.schedule = ml_collections.ConfigDict(
        dict(
            name="cosine",
            base_lr=0.005,
            warmup_epochs=0.0,
            warmup_init=0.0,
            boundaries_epochs=(),
            relative_rates=(1.0,),
        )
    )

    config.data = default_data_config()
    return config
