"""Tests of the VMP layer against hand-computed values and independent NumPy formulas."""

import math

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from jax.test_util import check_grads

from vmp_jax import motion_prompt as mp
from vmp_jax.motion_prompt import VideoMotionPrompt

MEAN, STD = 0.45, 0.225


def standardise(raw):
    """raw values in [0, 1] -> standardised frames, as the data pipeline makes them."""
    return ((np.asarray(raw, np.float32) - MEAN) / STD).astype(np.float32)


def grey_clip(values, h=1, w=1):
    """A (1, len(values), h, w, 3) clip whose frame t is uniformly grey with raw value values[t]."""
    raw = np.broadcast_to(np.asarray(values, np.float32)[None, :, None, None, None], (1, len(values), h, w, 3))
    return jnp.asarray(standardise(raw))


def sigmoid(z):
    return 1.0 / (1.0 + math.exp(-z))


def params(m, n):
    return {"params": {"m": jnp.float32(m), "n": jnp.float32(n)}}


def numpy_vmp(frames, m, n, weights=(0.299, 0.587, 0.114)):
    """An independent NumPy implementation of the whole layer (float64)."""
    x = np.asarray(frames, np.float64)
    grey = (x * STD + MEAN) @ np.asarray(weights, np.float64)
    d = grey[:, 1:] - grey[:, :-1]
    a = 5.0 / (0.45 * np.abs(np.tanh(m)) + 0.1)
    b = 0.6 * np.tanh(n)
    att = 1.0 / (1.0 + np.exp(-a * (d - b)))
    prompts = att[..., None] * x[:, 1:]
    bsz, t, h, w = att.shape
    variation = 0.0 if t < 2 else np.sum((att[:, 1:] - att[:, :-1]) ** 2) / (bsz * (t - 1) * h * w)
    return prompts, att, variation


def test_slope_and_shift_hand_values():
    a, b = mp.slope_and_shift(0.0, 0.0)
    assert float(a) == pytest.approx(50.0)
    assert float(b) == 0.0
    a, b = mp.slope_and_shift(math.atanh(0.5), math.atanh(-0.5))
    assert float(a) == pytest.approx(5.0 / (0.45 * 0.5 + 0.1), rel=1e-6)
    assert float(b) == pytest.approx(-0.3, rel=1e-6)
    # |tanh m|: the slope is even in m, the shift odd in n.
    assert float(mp.slope_and_shift(-0.7, 0.0)[0]) == pytest.approx(float(mp.slope_and_shift(0.7, 0.0)[0]))


def test_brightening_pixel_hand_computed():
    # Grey 0.2 -> 0.5: D = +0.3 (the grey weights sum to 1). m = atanh(0.5), n = atanh(0.5): a = 5/0.325, b = 0.3.
    frames = grey_clip([0.2, 0.5])
    m, n = math.atanh(0.5), math.atanh(0.5)
    prompts, variation, att = VideoMotionPrompt().apply(params(m, n), frames, return_attention=True)
    want_att = sigmoid(5.0 / 0.325 * (0.3 - 0.3))  # = 0.5 exactly: D equals the shift
    assert float(att[0, 0, 0, 0]) == pytest.approx(want_att, abs=1e-6)
    np.testing.assert_allclose(prompts[0, 0, 0, 0], want_att * (0.5 - MEAN) / STD * np.ones(3), rtol=1e-5)
    assert prompts.shape == (1, 1, 1, 1, 3) and att.shape == (1, 1, 1, 1)
    assert float(variation) == 0.0  # T = 1


def test_sign_of_difference_is_kept():
    # Darkening and brightening by the same amount give attention on opposite sides of 0.5 (no |D|).
    up = VideoMotionPrompt().apply(params(0.0, 0.0), grey_clip([0.2, 0.5]), return_attention=True)[2]
    down = VideoMotionPrompt().apply(params(0.0, 0.0), grey_clip([0.5, 0.2]), return_attention=True)[2]
    assert float(up[0, 0, 0, 0]) == pytest.approx(sigmoid(50 * 0.3), rel=1e-6)
    assert float(down[0, 0, 0, 0]) == pytest.approx(sigmoid(-50 * 0.3), rel=1e-3)


def test_attention_multiplies_the_later_frame():
    # Three frames with distinct values: prompt t must be A_t * X_{t+1}, never X_t.
    raw = [0.1, 0.4, 0.9]
    frames = grey_clip(raw)
    prompts, _, att = VideoMotionPrompt().apply(params(0.3, -0.2), frames, return_attention=True)
    for t in range(2):
        later = (raw[t + 1] - MEAN) / STD
        np.testing.assert_allclose(prompts[0, t, 0, 0], float(att[0, t, 0, 0]) * later * np.ones(3), rtol=1e-5)


def test_matches_numpy_reference_and_variation_formula():
    rng = np.random.default_rng(0)
    frames = standardise(rng.uniform(0, 1, (2, 5, 6, 7, 3)))
    m, n = 0.37, -0.81
    prompts, variation, att = VideoMotionPrompt().apply(params(m, n), jnp.asarray(frames), return_attention=True)
    want_p, want_a, want_v = numpy_vmp(frames, m, n)
    np.testing.assert_allclose(att, want_a, atol=2e-6)
    np.testing.assert_allclose(prompts, want_p, atol=1e-5)
    assert float(variation) == pytest.approx(want_v, rel=1e-5)
    assert float(variation) > 0


def test_variation_function_directly():
    rng = np.random.default_rng(1)
    att = rng.uniform(0, 1, (3, 4, 5, 2)).astype(np.float32)
    want = sum(np.sum((att[:, t + 1] - att[:, t]) ** 2) for t in range(3)) / (3 * 3 * 5 * 2)
    assert float(mp.temporal_variation(jnp.asarray(att))) == pytest.approx(want, rel=1e-5)
    assert float(mp.temporal_variation(jnp.asarray(att[:, :1]))) == 0.0


def test_gradients_of_m_and_n():
    rng = np.random.default_rng(2)
    frames = jnp.asarray(standardise(rng.uniform(0, 1, (1, 3, 4, 4, 3))))
    layer = VideoMotionPrompt()

    def objective(m, n):
        prompts, variation = layer.apply(params(m, n), frames)
        return jnp.sum(prompts**2) * 1e-2 + variation

    check_grads(
        objective, (jnp.float32(0.4), jnp.float32(-0.3)), order=1, modes=("rev",), eps=1e-2, atol=2e-2, rtol=2e-2
    )
    gm, gn = jax.grad(objective, argnums=(0, 1))(jnp.float32(0.4), jnp.float32(-0.3))
    assert float(gm) != 0.0 and float(gn) != 0.0


def test_reference_luma_swaps_red_and_blue_weights():
    # Only the red channel changes between frames, by 0.5: D = 0.5 * w_R.
    raw = np.full((1, 2, 1, 1, 3), 0.3, np.float32)
    raw[0, 1, 0, 0, 0] = 0.8
    frames = jnp.asarray(standardise(raw))
    for mode, w_red in (("rgb", 0.299), ("reference", 0.114)):
        att = VideoMotionPrompt(luma=mode).apply(params(0.0, 0.0), frames, return_attention=True)[2]
        assert float(att[0, 0, 0, 0]) == pytest.approx(sigmoid(50 * 0.5 * w_red), rel=1e-5), mode
    np.testing.assert_allclose(
        mp.luma(frames, mp.LUMA_WEIGHTS["reference"])[0, 1, 0, 0], 0.114 * 0.8 + 0.587 * 0.3 + 0.299 * 0.3, rtol=1e-6
    )


def test_per_pixel_parametrization():
    rng = np.random.default_rng(3)
    frames = jnp.asarray(standardise(rng.uniform(0, 1, (2, 4, 5, 6, 3))))
    layer = VideoMotionPrompt(parametrization="per_pixel")
    variables = layer.init(jax.random.key(0), frames)
    assert variables["params"]["m"].shape == (5, 6) and variables["params"]["n"].shape == (5, 6)
    # Each pixel uses its own (m, n): equal to the NumPy formula with broadcast maps.
    prompts, variation, att = layer.apply(variables, frames, return_attention=True)
    m, n = (np.asarray(variables["params"][k], np.float64) for k in ("m", "n"))
    want_p, want_a, want_v = numpy_vmp(np.asarray(frames), m, n)
    np.testing.assert_allclose(att, want_a, atol=2e-6)
    assert float(variation) == pytest.approx(want_v, rel=1e-5)
    # Constant maps reproduce the scalar layer.
    const = {"params": {"m": jnp.full((5, 6), 0.2), "n": jnp.full((5, 6), -0.1)}}
    np.testing.assert_allclose(
        layer.apply(const, frames)[0], VideoMotionPrompt().apply(params(0.2, -0.1), frames)[0], atol=1e-6
    )
    with pytest.raises(ValueError, match=r"m has shape \(5, 6\).*need \(4, 6\).*per-pixel layer only applies"):
        layer.apply(variables, frames[:, :, :4])


def test_default_initialiser_statistics():
    layer = VideoMotionPrompt(parametrization="per_pixel")
    variables = layer.init(jax.random.key(7), jnp.zeros((1, 2, 100, 100, 3)))
    m = np.asarray(variables["params"]["m"])
    assert abs(m.mean() - 1e-5) < 0.03 and abs(m.std() - 1.0) < 0.03
    assert not np.allclose(m, np.asarray(variables["params"]["n"]))  # m and n get different keys


def test_bfloat16_input():
    rng = np.random.default_rng(4)
    frames = jnp.asarray(standardise(rng.uniform(0, 1, (2, 4, 8, 8, 3))))
    variables = params(0.5, 0.1)
    p32, v32, a32 = VideoMotionPrompt().apply(variables, frames, return_attention=True)
    p16, v16, a16 = VideoMotionPrompt().apply(variables, frames.astype(jnp.bfloat16), return_attention=True)
    assert p16.dtype == jnp.bfloat16 and a16.dtype == jnp.float32 and v16.dtype == jnp.float32
    # bf16 rounding of the inputs (8 bits of mantissa) moves the steep sigmoid a little; nothing more.
    np.testing.assert_allclose(np.asarray(p16, np.float32), p32, atol=0.1)
    assert float(jnp.mean(jnp.abs(a16 - a32))) < 0.02


def test_batch_consistency_under_jit():
    rng = np.random.default_rng(5)
    frames = jnp.asarray(standardise(rng.uniform(0, 1, (3, 4, 6, 6, 3))))
    layer = VideoMotionPrompt()
    variables = params(-0.4, 0.2)
    apply = jax.jit(lambda v, x: layer.apply(v, x, return_attention=True))
    prompts, _, att = apply(variables, frames)
    for i in range(3):
        p_i, _, a_i = apply(variables, frames[i : i + 1])
        np.testing.assert_allclose(prompts[i : i + 1], p_i, atol=1e-6)
        np.testing.assert_allclose(att[i : i + 1], a_i, atol=1e-6)
    # The batch variation is the mean of the per-clip variations (equal sizes).
    per_clip = [float(apply(variables, frames[i : i + 1])[1]) for i in range(3)]
    assert float(apply(variables, frames)[1]) == pytest.approx(np.mean(per_clip), rel=1e-5)


def test_pure_pipeline_equals_layer():
    rng = np.random.default_rng(6)
    frames = jnp.asarray(standardise(rng.uniform(0, 1, (1, 3, 4, 4, 3))))
    out = mp.motion_prompts(frames, {"m": jnp.float32(0.1), "n": jnp.float32(0.2)}, "reference")
    prompts, variation, att = VideoMotionPrompt(luma="reference").apply(params(0.1, 0.2), frames, return_attention=True)
    np.testing.assert_array_equal(out.prompts, prompts)
    np.testing.assert_array_equal(out.attention, att)
    assert float(out.variation) == float(variation)


@pytest.mark.parametrize(
    "frames, message",
    [
        (np.zeros((2, 4, 4, 3), np.float32), r"rank 5.*\(2, 4, 4, 3\)"),
        (np.zeros((1, 1, 4, 4, 3), np.float32), r"at least 2 frames.*\(1, 1, 4, 4, 3\)"),
        (np.zeros((1, 2, 4, 4, 1), np.float32), r"3 \(RGB\) channels.*\(1, 2, 4, 4, 1\)"),
        (np.zeros((1, 2, 4, 4, 3), np.uint8), r"standardised floats.*uint8"),
        ([[1.0]], r"must be an array.*list"),
    ],
)
def test_bad_frames_raise_clear_errors(frames, message):
    with pytest.raises(ValueError, match=message):
        VideoMotionPrompt().init(jax.random.key(0), frames)


def test_bad_fields_raise_clear_errors():
    frames = jnp.zeros((1, 2, 4, 4, 3))
    with pytest.raises(ValueError, match=r"luma must be one of.*'bgr'"):
        VideoMotionPrompt(luma="bgr").init(jax.random.key(0), frames)
    with pytest.raises(ValueError, match=r"parametrization must be one of.*'global'"):
        VideoMotionPrompt(parametrization="global").init(jax.random.key(0), frames)


# ------------------------------------------------------------------ power normalisations (Koniusz & Zhang)

NUMPY_PN = {  # independent float64 formulas on p = |D|, coefficient c
    "gamma": lambda p, c: (p + 1e-6) ** c,
    "maxexp": lambda p, c: 1.0 - (1.0 - p) ** c,
    "sigme": lambda p, c: 2.0 / (1.0 + np.exp(-c * p)) - 1.0,
    "asinhe": lambda p, c: np.arcsinh(c * p) / np.arcsinh(c),
}
PN_NAME = {"gamma": "log_gamma", "maxexp": "log_eta", "sigme": "log_eta", "asinhe": "log_gamma"}


@pytest.mark.parametrize("pn", sorted(NUMPY_PN))
def test_power_normalisations_match_their_definitions(pn):
    rng = np.random.default_rng(11)
    frames = standardise(rng.uniform(0, 1, (2, 4, 5, 6, 3)))
    coefficient = 3.7
    layer = VideoMotionPrompt(pn=pn)
    variables = {"params": {PN_NAME[pn]: jnp.float32(math.log(coefficient))}}
    prompts, variation, att = layer.apply(variables, jnp.asarray(frames), return_attention=True)
    grey = (frames.astype(np.float64) * STD + MEAN) @ np.asarray([0.299, 0.587, 0.114])
    p = np.abs(grey[:, 1:] - grey[:, :-1])
    expected = NUMPY_PN[pn](p, coefficient)
    np.testing.assert_allclose(att, expected, rtol=2e-5, atol=2e-6)
    np.testing.assert_allclose(prompts, expected[..., None] * frames[:, 1:], rtol=2e-5, atol=2e-5)
    t = expected.shape[1]
    np.testing.assert_allclose(
        variation, np.sum((expected[:, 1:] - expected[:, :-1]) ** 2) / (2 * (t - 1) * 30), rtol=1e-4
    )
    # An attention in [0, 1] that ignores the sign of D and grows with |D|.
    assert att.min() >= 0 and att.max() <= 1
    flipped = layer.apply(variables, jnp.asarray(frames[:, ::-1]), return_attention=True)[2]
    np.testing.assert_allclose(flipped[:, ::-1], att, rtol=1e-5, atol=1e-6)


@pytest.mark.parametrize("pn", sorted(NUMPY_PN))
def test_power_normalisation_parameter_init_and_gradient(pn):
    frames = jnp.asarray(standardise(np.random.default_rng(12).uniform(0, 1, (1, 3, 4, 4, 3))))
    variables = VideoMotionPrompt(pn=pn).init(jax.random.key(0), frames)
    assert list(variables["params"]) == [PN_NAME[pn]]
    coefficient = mp.pn_coefficients(variables["params"], pn)
    assert float(list(coefficient.values())[0]) == pytest.approx(mp.PN_DEFAULT_COEFFICIENT[pn], rel=1e-6)
    assert list(coefficient) == [PN_NAME[pn].removeprefix("log_")]
    custom = VideoMotionPrompt(pn=pn, pn_init=mp.normal_init(math.log(2.0), 0.0)).init(jax.random.key(0), frames)
    assert float(jnp.exp(custom["params"][PN_NAME[pn]])) == pytest.approx(2.0, rel=1e-6)

    def objective(log_c):
        out = mp.motion_prompts(frames, {PN_NAME[pn]: log_c}, pn=pn)
        return jnp.sum(out.prompts) + out.variation

    check_grads(objective, (jnp.float32(math.log(1.5)),), order=1, modes=("rev",), atol=2e-2, rtol=2e-2)


def test_sigmoid_coefficients_are_slope_and_shift():
    c = mp.pn_coefficients({"m": jnp.float32(0.0), "n": jnp.float32(math.atanh(0.5))})
    assert float(c["slope_a"]) == pytest.approx(50.0) and float(c["shift_b"]) == pytest.approx(0.3)


def test_unknown_power_normalisation_and_missing_parameters():
    frames = jnp.zeros((1, 2, 4, 4, 3))
    with pytest.raises(ValueError, match="pn must be one of .*got 'power'"):
        VideoMotionPrompt(pn="power").init(jax.random.key(0), frames)
    with pytest.raises(ValueError, match=r"pn='maxexp' needs parameters \('log_eta',\), missing \['log_eta'\]"):
        mp.motion_prompts(frames, {"m": 0.0, "n": 0.0}, pn="maxexp")
