"""Grain input pipeline: batches, determinism, resume mid-epoch, sharding, eval chunks."""

import json
import types

import numpy as np
import pytest
import soundfile as sf

from mir_jax.data import pipeline as P
from mir_jax.data.datasets import Track

CFG = types.SimpleNamespace(frame_rate=10.0)  # the pipeline only reads frame_rate
BINS = 3


def make_tracks(lengths):
    return [Track(f"t{k}", f"/nonexistent/t{k}.wav") for k in range(len(lengths))], dict(
        (f"t{k}", n) for k, n in enumerate(lengths)
    )


def fake_features(lengths_by_id):
    """Feature value = 1000 * track number + frame index (+ bin / 10), so crops are traceable."""

    def features(track):
        k, n = int(track.track_id[1:]), lengths_by_id[track.track_id]
        return (1000 * k + np.arange(n)[:, None] + np.arange(BINS)[None, :] / 10).astype(np.float32)

    return features


def targets(track, num_frames, frame_rate):
    assert frame_rate == CFG.frame_rate
    k = int(track.track_id[1:])
    return {"frame_id": 1000 * k + np.arange(num_frames)}, {"track_num": np.int32(k)}


def train_it(lengths=(30, 12, 25, 40, 9), **kw):
    tracks, by_id = make_tracks(lengths)
    args = dict(targets_fn=targets, batch_size=2, crop_frames=10, seed=7,
                features_fn=fake_features(by_id), shard_index=0, shard_count=1)
    args.update(kw)
    return P.train_iterator(tracks, CFG, **args)


def assert_batches_equal(a, b):
    assert a.keys() == b.keys()
    for k in a:
        np.testing.assert_array_equal(a[k], b[k], err_msg=k)


def test_train_batch_contents_are_consistent_crops():
    lengths = (30, 12, 25, 40, 9)
    it = train_it(lengths)
    for _ in range(6):
        b = next(it)
        assert b["features"].shape == (2, 10, BINS, 1) and b["features"].dtype == np.float32
        assert b["mask"].dtype == bool and b["lengths"].dtype == np.int32
        for i in range(2):
            k = int(b["track_num"][i])
            n = int(b["lengths"][i])
            assert n == min(10, lengths[k])
            np.testing.assert_array_equal(b["mask"][i], np.arange(10) < n)
            start = int(b["frame_id"][i, 0]) - 1000 * k
            assert 0 <= start <= max(0, lengths[k] - 10)
            # features, frame targets and clip targets come from the same crop
            np.testing.assert_array_equal(b["frame_id"][i, :n], 1000 * k + start + np.arange(n))
            np.testing.assert_allclose(b["features"][i, :n, 0, 0], b["frame_id"][i, :n])
            assert np.all(b["features"][i, n:] == 0) and np.all(b["frame_id"][i, n:] == 0)


def test_each_epoch_visits_every_track_once_in_a_new_order():
    # 6 tracks, batch 3: two batches per epoch
    it = train_it(lengths=(11,) * 6, batch_size=3)
    epochs = []
    for _ in range(4):
        order = [int(k) for _ in range(2) for k in next(it)["track_num"]]
        assert sorted(order) == list(range(6))
        epochs.append(order)
    assert len({tuple(e) for e in epochs}) > 1


def test_crop_offsets_vary_across_epochs():
    it = train_it(lengths=(50,), batch_size=1)
    starts = {int(next(it)["frame_id"][0, 0]) for _ in range(20)}
    assert len(starts) > 5


def test_same_seed_same_batches_other_seed_differs():
    a, b, c = train_it(seed=3), train_it(seed=3), train_it(seed=4)
    ba = [next(a) for _ in range(8)]
    bb = [next(b) for _ in range(8)]
    bc = [next(c) for _ in range(8)]
    for x, y in zip(ba, bb):
        assert_batches_equal(x, y)
    assert any(not np.array_equal(x["frame_id"], z["frame_id"]) for x, z in zip(ba, bc))


@pytest.mark.parametrize("stop", [1, 3, 4])
def test_restore_mid_epoch_reproduces_the_rest(stop):
    # 5 tracks, batch 2: batches straddle epoch boundaries
    ref = train_it()
    expected = [next(ref) for _ in range(stop + 6)]
    run = train_it()
    for _ in range(stop):
        next(run)
    state = json.loads(json.dumps(run.get_state()))  # must survive a JSON checkpoint
    resumed = train_it()
    resumed.set_state(state)
    for want in expected[stop:]:
        assert_batches_equal(next(resumed), want)


def test_sharding_splits_tracks_and_defaults_to_process():
    lengths = (11,) * 7
    seen = []
    for shard in range(2):
        it = train_it(lengths=lengths, batch_size=1, shard_index=shard, shard_count=2)
        seen.append({int(next(it)["track_num"][0]) for _ in range(20)})
    assert seen[0] == {0, 2, 4, 6} and seen[1] == {1, 3, 5}
    # None -> jax.process_index()/process_count() == 0/1 in a single process
    a = train_it(shard_index=None, shard_count=None)
    b = train_it(shard_index=0, shard_count=1)
    for _ in range(3):
        assert_batches_equal(next(a), next(b))


@pytest.mark.parametrize(
    "kw,match",
    [
        (dict(batch_size=0), "batch_size"),
        (dict(crop_frames=-1), "crop_frames"),
        (dict(seed=-1), "seed"),
        (dict(shard_index=2, shard_count=2), "shard_index"),
        (dict(shard_index=6, shard_count=7), "no tracks"),
    ],
)
def test_bad_arguments(kw, match):
    with pytest.raises(ValueError, match=match):
        train_it(**kw)


def test_targets_fn_errors_name_track_and_key():
    def wrong_length(track, n, fr):
        return {"y": np.zeros(n + 1)}, {}

    with pytest.raises(ValueError, match=r"'t\d'.*'y'"):
        next(train_it(targets_fn=wrong_length))

    def reserved(track, n, fr):
        return {}, {"lengths": 1}

    with pytest.raises(ValueError, match="reserved"):
        next(train_it(targets_fn=reserved))


# ---------------------------------------------------------------- evaluation


def eval_b(lengths, **kw):
    tracks, by_id = make_tracks(lengths)
    return list(P.eval_batches(tracks, CFG, targets_fn=targets, features_fn=fake_features(by_id), **kw))


def test_eval_whole_tracks_padded_to_longest_in_batch():
    batches = eval_b((5, 9, 3, 4, 7), batch_size=2)
    assert [b["track_ids"] for b in batches] == [["t0", "t1"], ["t2", "t3"], ["t4"]]
    assert [b["features"].shape[1] for b in batches] == [9, 4, 7]
    b = batches[0]
    np.testing.assert_array_equal(b["lengths"], [5, 9])
    np.testing.assert_array_equal(b["mask"][0], np.arange(9) < 5)
    np.testing.assert_array_equal(b["frame_id"][0], list(range(5)) + [0] * 4)
    np.testing.assert_array_equal(b["frame_id"][1], 1000 + np.arange(9))
    np.testing.assert_array_equal(b["track_num"], [0, 1])


def test_eval_pad_batch_and_pad_to_multiple():
    batches = eval_b((5, 9, 3), batch_size=2, pad_batch=True, pad_to_multiple=8)
    assert [b["features"].shape[:2] for b in batches] == [(2, 16), (2, 8)]
    last = batches[-1]
    assert last["track_ids"] == ["t2", ""]
    np.testing.assert_array_equal(last["lengths"], [3, 0])
    assert not last["mask"][1].any()


def test_chunk_starts_by_hand():
    assert P.chunk_starts(5, 8, 2) == [0]
    assert P.chunk_starts(8, 8, 2) == [0]
    assert P.chunk_starts(9, 8, 2) == [0, 6]
    assert P.chunk_starts(20, 8, 2) == [0, 6, 12]
    assert P.chunk_starts(21, 8, 2) == [0, 6, 12, 18]
    with pytest.raises(ValueError, match="chunk_overlap"):
        P.chunk_starts(10, 8, 8)


def test_stitch_chunks_hand_made_ownership():
    # chunks of 4 with overlap 2 over 6 frames: starts 0, 2; chunk values mark ownership
    out = P.stitch_chunks([np.full(4, 1), np.full(4, 2)], [0, 2], 6, overlap=2)
    np.testing.assert_array_equal(out, [1, 1, 1, 2, 2, 2])


@pytest.mark.parametrize("chunk,overlap", [(8, 2), (8, 3), (7, 0), (16, 4)])
def test_eval_chunks_stitch_back_to_the_whole_track(chunk, overlap):
    lengths = (5, 23, 40, 8)
    batches = eval_b(lengths, batch_size=3, chunk_frames=chunk, chunk_overlap=overlap)
    per_track = {}
    for b in batches:
        assert b["features"].shape[1] == chunk
        for i, tid in enumerate(b["track_ids"]):
            np.testing.assert_array_equal(
                b["mask"][i], np.arange(chunk) < b["num_frames"][i] - b["chunk_starts"][i]
            )
            per_track.setdefault(tid, []).append((b["chunk_starts"][i], b["features"][i], b["frame_id"][i]))
    assert sorted(per_track) == ["t0", "t1", "t2", "t3"]
    for tid, items in per_track.items():
        k, n = int(tid[1:]), lengths[int(tid[1:])]
        assert [s for s, _, _ in items] == P.chunk_starts(n, chunk, overlap)
        feats = P.stitch_chunks([f for _, f, _ in items], [s for s, _, _ in items], n, overlap)
        ids = P.stitch_chunks([y for _, _, y in items], [s for s, _, _ in items], n, overlap)
        np.testing.assert_allclose(feats[:, :, 0], fake_features({tid: n})(Track(tid, "")))
        np.testing.assert_array_equal(ids, 1000 * k + np.arange(n))


def test_eval_bad_overlap_fails_at_call():
    with pytest.raises(ValueError, match="chunk_overlap"):
        P.eval_batches([], CFG, targets_fn=targets, batch_size=1, chunk_frames=4, chunk_overlap=4)


# ---------------------------------------------------------------- with real audio features


def _wav_dataset(tmp_path, seconds=(1.0, 0.6), sr=8000):
    rng = np.random.default_rng(0)
    tracks = []
    for k, s in enumerate(seconds):
        path = tmp_path / f"a{k}.wav"
        sf.write(path, (0.1 * rng.standard_normal(int(s * sr))).astype(np.float32), sr)
        tracks.append(Track(f"a{k}", str(path)))
    return tracks


def _index_targets(track, n, fr):
    return {"frame_index": np.arange(n)}, {}


@pytest.mark.parametrize("use_cache", [False, True])
def test_train_features_match_audio_module(tmp_path, use_cache):
    features = pytest.importorskip("mir_jax.audio.features")
    io = pytest.importorskip("mir_jax.audio.io")
    if use_cache:
        pytest.importorskip("mir_jax.audio.cache")
    cfg = features.FeatureConfig(kind="mel", sample_rate=8000, n_fft=256, hop_length=160, n_mels=16)
    tracks = _wav_dataset(tmp_path)
    it = P.train_iterator(tracks, cfg, targets_fn=_index_targets, batch_size=2, crop_frames=20,
                          seed=0, cache_dir=(tmp_path / "cache") if use_cache else None)
    b = next(it)
    ref = {t.track_id: features.compute_features(io.load_audio(t.audio_path, 8000), cfg) for t in tracks}
    assert b["features"].shape == (2, 20, 16, 1)
    found = 0
    for i in range(2):
        start, n = int(b["frame_index"][i, 0]), int(b["lengths"][i])
        matches = [tid for tid, r in ref.items()
                   if r.shape[0] >= start + n and np.allclose(r[start:start + n], b["features"][i, :n], atol=1e-4)]
        found += len(matches) == 1
    assert found == 2


def test_thread_count_does_not_change_batches():
    a, b = train_it(num_threads=0), train_it(num_threads=4, prefetch_buffer_size=8)
    for _ in range(7):
        assert_batches_equal(next(a), next(b))
