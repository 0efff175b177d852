"""grain pipelines: sharding, shuffling, exact resume, eval padding and masks."""

import numpy as np
import pytest

from vmp_jax.data import pipeline


class _Indexed:
    """A tiny source whose frames encode the item index, so batches can be traced back to items."""

    def __init__(self, n: int, t: int = 3):
        self.n, self.t = n, t

    def __len__(self):
        return self.n

    def __getitem__(self, i):
        return {"frames": np.full((self.t, 4, 4, 3), i, np.uint8), "label": np.int32(i % 5)}


def _ids(batch):
    return batch["frames"][:, 0, 0, 0, 0].astype(int).tolist()


def test_train_batches_shapes_epochs_and_shards():
    whole = pipeline.take(pipeline.train_dataset(_Indexed(20), batch_size=4, seed=0), 10)  # 40 items = 2 epochs
    assert whole[0]["frames"].shape == (4, 3, 4, 4, 3) and whole[0]["frames"].dtype == np.uint8
    assert whole[0]["label"].dtype == np.int32
    assert [int(x) for x in whole[0]["label"]] == [i % 5 for i in _ids(whole[0])]
    ids = sum((_ids(b) for b in whole), [])
    assert sorted(ids[:20]) == sorted(ids[20:]) == list(range(20))  # each epoch is a permutation of the source
    assert ids[:20] != ids[20:]  # reshuffled per epoch
    # Two processes with half the batch each: together they read exactly the 1-process global batches.
    shards = [
        pipeline.take(pipeline.train_dataset(_Indexed(20), batch_size=2, seed=0, shard_index=p, shard_count=2), 10)
        for p in (0, 1)
    ]
    for g in range(10):
        assert sorted(_ids(shards[0][g]) + _ids(shards[1][g])) == sorted(_ids(whole[g]))
    assert not set(_ids(shards[0][0])) & set(_ids(shards[1][0]))


def test_train_seed_changes_order_and_is_deterministic():
    a = _ids(pipeline.take(pipeline.train_dataset(_Indexed(32), batch_size=8, seed=1), 1)[0])
    b = _ids(pipeline.take(pipeline.train_dataset(_Indexed(32), batch_size=8, seed=1), 1)[0])
    c = _ids(pipeline.take(pipeline.train_dataset(_Indexed(32), batch_size=8, seed=2), 1)[0])
    assert a == b and a != c


def test_train_resume_is_exact_including_augmentation_rng():
    def noisy(item, rng):  # augmentation randomness must be reproduced after set_state too
        return {**item, "frames": (item["frames"] + rng.integers(0, 50, size=item["frames"].shape)).astype(np.uint8)}

    ds = pipeline.train_dataset(_Indexed(13), batch_size=3, seed=5, transform=noisy)
    it = iter(ds)
    for _ in range(6):
        next(it)
    state = it.get_state()
    expected = [next(it) for _ in range(5)]
    fresh = iter(ds)
    fresh.set_state(state)
    for e in expected:
        got = next(fresh)
        np.testing.assert_array_equal(got["frames"], e["frames"])
        np.testing.assert_array_equal(got["label"], e["label"])


def test_train_skipped_items_are_dropped():
    skip_odd = lambda item, rng: None if int(item["frames"][0, 0, 0, 0]) % 2 else item
    ids = sum(
        (
            _ids(b)
            for b in pipeline.take(pipeline.train_dataset(_Indexed(10), batch_size=2, seed=0, transform=skip_odd), 10)
        ),
        [],
    )
    assert set(ids) == {0, 2, 4, 6, 8}


def test_eval_pads_to_equal_batches_on_every_shard():
    n, b, shards = 11, 2, 3  # contiguous blocks of 4/4/3 items -> 2 batches each, the last shard padded with mask False
    seen = []
    for s in range(shards):
        batches = list(pipeline.eval_dataset(_Indexed(n), batch_size=b, shard_index=s, shard_count=shards))
        assert len(batches) == pipeline.eval_batch_count(n, b, shards) == 2
        for batch in batches:
            assert batch["frames"].shape == (2, 3, 4, 4, 3) and batch["mask"].dtype == bool
            for vid, m, lab, f in zip(batch["video_index"], batch["mask"], batch["label"], batch["frames"]):
                if m:
                    assert f[0, 0, 0, 0] == vid and lab == vid % 5
                    seen.append(int(vid))
                else:
                    assert vid == -1 and lab == -1 and not f.any()
    assert sorted(seen) == list(range(n))  # every item exactly once over all processes


def test_eval_skipped_item_is_masked():
    skip3 = lambda item, rng: None if int(item["frames"][0, 0, 0, 0]) == 3 else item
    batches = list(pipeline.eval_dataset(_Indexed(6), batch_size=4, transform=skip3))
    mask = np.concatenate([b["mask"] for b in batches])
    assert mask.tolist() == [True, True, True, False, True, True, False, False]


def test_bad_arguments():
    with pytest.raises(ValueError, match="shard_index"):
        pipeline.train_dataset(_Indexed(4), batch_size=2, seed=0, shard_index=2, shard_count=2)
    with pytest.raises(ValueError, match="batch_size"):
        pipeline.train_dataset(_Indexed(4), batch_size=8, seed=0)


def test_multiprocess_prefetch_resumes_exactly():
    """num_workers>0 (mp_prefetch, here under pytest without absl flags parsed) keeps exact get/set_state."""
    from vmp_jax.data.procedural import ProceduralMotionSource

    ds = pipeline.train_dataset(ProceduralMotionSource(24, 3, 16, 16, 4, seed=0), batch_size=4, seed=3, num_workers=2)
    it = iter(ds)
    for _ in range(3):
        next(it)
    state = it.get_state()
    expected = [np.array(next(it)["frames"]) for _ in range(3)]
    fresh = iter(ds)
    fresh.set_state(state)
    for e in expected:
        np.testing.assert_array_equal(np.array(next(fresh)["frames"]), e)


def test_train_split_with_no_readable_item_raises_instead_of_looping():
    skip_all = lambda item, rng: None
    ds = pipeline.train_dataset(_Indexed(7), batch_size=2, seed=0, transform=skip_all)
    with pytest.raises(pipeline.UnreadableSplitError, match=r"all 7 items were tried"):
        next(iter(ds))


def test_one_readable_item_among_many_bad_keeps_training():
    only_5 = lambda item, rng: item if int(item["frames"][0, 0, 0, 0]) == 5 else None
    batches = pipeline.take(pipeline.train_dataset(_Indexed(40), batch_size=2, seed=0, transform=only_5), 4)
    assert set(sum((_ids(b) for b in batches), [])) == {5}  # 8 epochs of 39 bad items each, no false alarm


def _two_clips(item, rng):
    """K=2 clips of an _Indexed item: clip k's frames hold 10 * index + k (and a random value from rng)."""
    frames = np.stack([item["frames"] * 10 + k for k in range(2)])
    frames[:, :, 1, 1, 1] = rng.integers(0, 256, 2)[:, None]
    return {"frames": frames, "label": item["label"]}


def test_several_clips_per_item_fill_the_batch_and_resume_exactly():
    ds = pipeline.train_dataset(_Indexed(12), batch_size=6, seed=0, transform=_two_clips, clips_per_item=2)
    it = iter(ds)
    batches = [next(it) for _ in range(4)]  # 4 batches of 3 videos = one epoch of 12 videos
    b = batches[0]
    assert b["frames"].shape == (6, 3, 4, 4, 3) and b["label"].shape == (6,)
    codes = b["frames"][:, 0, 0, 0, 0].astype(int)
    np.testing.assert_array_equal(codes % 10, [0, 1] * 3)  # each video's 2 clips, adjacent
    np.testing.assert_array_equal(codes[::2] // 10, codes[1::2] // 10)
    np.testing.assert_array_equal(b["label"], (codes // 10) % 5)
    videos = sorted(int(c) // 10 for x in batches for c in x["frames"][::2, 0, 0, 0, 0])
    assert videos == list(range(12))  # an epoch is every video once, K clips each
    # The stream counts videos: after 4 batches it is 12 elements on, and resumes there exactly.
    assert it.get_state() == pipeline.train_state_at(4 * 6 // 2)
    fresh = iter(ds)
    fresh.set_state(pipeline.train_state_at(2 * 6 // 2))
    for want in batches[2:]:
        np.testing.assert_array_equal(next(fresh)["frames"], want["frames"])
    with pytest.raises(ValueError, match="not a multiple of clips_per_item=4"):
        pipeline.train_dataset(_Indexed(12), batch_size=6, seed=0, transform=_two_clips, clips_per_item=4)
    with pytest.raises(ValueError, match=r"must be uint8 \(2 clips, T, H, W, 3\)"):
        next(iter(pipeline.train_dataset(_Indexed(12), batch_size=6, seed=0, clips_per_item=2)))
