"""TimeSformer-Base (divided space-time attention) + VMP on MPII Cooking 2: the seed paper's released setting
(q1xiangchen/VMPs `configs/MPII/VMPs.yaml`), fine-tuned from the Kinetics-600 checkpoint
`TimeSformer_divST_8x32_224_K600.pyth` (facebookresearch/TimeSformer's model zoo).

    python -m vmp_jax.data.splits mpii_cooking2_official --annotations=groundtruth.csv --classes=classes67.txt \
      --setup=experimentalSetup --out=manifests/mpii_cooking2_official
    python train.py --config configs/timesformer_mpii_cooking2.py --workdir runs/timesformer_mpii_cooking2 \
      --config.init_checkpoint=TimeSformer_divST_8x32_224_K600.pyth \
      --config.data.train_manifest=manifests/mpii_cooking2_official/train.csv \
      --config.data.eval_manifest=manifests/mpii_cooking2_official/test.csv \
      --config.data.class_names=manifests/mpii_cooking2_official/classes.txt --config.data.video_root=/data/mpii

As the reference: 8 prompts from 9 frames 32 frames apart, train short side in [256, 320] and 224^2 random crops,
test 1 clip x 3 crops of 224 (short side 224); SGD, momentum 0.9, Nesterov, weight decay 1e-4 on every parameter
(embeddings, norms, biases, m and n included), base lr 0.005 x 1 / 0.1 / 0.01 from epochs 0 / 11 / 14, 25
epochs, no warm-up, no attention-variation penalty (PENALTY_WEIGHT 0); the global batch of 64 is 8 accumulated
micro-batches of 8 (the reference: 8 clips x 8 accumulation steps on 2 GPUs); the luma weights are the
reference's (`luma='reference'`). On NVIDIA GPUs add `--config.model.timesformer.attention_impl=cudnn` (fused
attention in bfloat16); `--config.model.timesformer.remat_policy=nothing_saveable` trades compute for memory.

Runtime: not measured here (no data set or GPU on the development machine).
"""

from configs import common

NUM_CLASSES = 67


def get_config():
    config = common.base_config()
    config.num_frames = 8
    config.batch_size = 64
    config.grad_accum_steps = 8
    config.eval_batch_size = 16
    config.num_epochs = 25.0
    config.num_train_steps = 0
    config.vmp_lambda = 0.0
    config.log_every_steps = 20
    config.eval_every_steps = 500
    config.checkpoint_every_steps = 500

    config.model.backbone = "timesformer"
    config.model.timesformer.attention_type = "divided_space_time"
    config.model.timesformer.num_frames = 8
    config.model.timesformer.image_size = 224
    config.model.num_classes = NUM_CLASSES
    config.model.dtype = "bfloat16"
    config.model.vmp.luma = "reference"

    config.optimizer.name = "sgd"
    config.optimizer.momentum = 0.9
    config.optimizer.nesterov = True
    config.optimizer.weight_decay = 1e-4
    config.optimizer.decay_norm_and_bias = True
    config.optimizer.decay_vmp = True
    config.schedule.name = "steps"
    config.schedule.base_lr = 0.005
    config.schedule.warmup_epochs = 0.0
    config.schedule.boundaries_epochs = (11.0, 14.0)
    config.schedule.relative_rates = (1.0, 0.1, 0.01)

    config.data.source = "video_manifest"
    config.data.target_fps = 30.0
    config.data.sampling_rate = 32
    config.data.crop_size = 224
    config.data.train_scale = (256, 320)
    config.data.eval_short_side = 224
    config.data.eval_num_clips = 1
    config.data.eval_num_crops = 3
    return config
