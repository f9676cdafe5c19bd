"""Input pipeline: tracks -> padded batches of features, targets, lengths, masks.

Training (:func:`train_iterator`) is a Grain ``MapDataset`` chain::

    MapDataset.range(sys.maxsize).seed(seed)
      .map(epoch shuffle)       # -> track index of this shard; a new permutation
                                #    per epoch, drawn from (seed, epoch)
      .random_map(load + crop)  # features/targets memoised per track; crop
                                #    offset from Grain's per-index RNG
      .batch(batch_size)
      .to_iter_dataset(ReadOptions(...))

Every random choice is a pure function of ``(seed, element index)``, so the
iterator's state is just the index of the next batch: ``get_state()`` returns
a small JSON-serialisable dict and ``set_state()`` on a fresh iterator built
with the same arguments resumes with exactly the batches the first run would
have seen, crops included.

Evaluation (:func:`eval_batches`) yields whole tracks in order, padded to the
longest track in the batch, or, with ``chunk_frames``, fixed-length chunks
overlapping by ``chunk_overlap`` frames; :func:`stitch_chunks` puts chunk
predictions back together.

Batches are dicts of numpy arrays: ``features (B, T, bins, channels) float32``,
``mask (B, T) bool`` (True on real frames), ``lengths (B,) int32``, plus the
targets from ``targets_fn``. Frame targets are cropped/padded with the
features (padding value 0: use the mask); clip targets are stacked.

``targets_fn(track, num_frames, frame_rate) -> (frame_targets, clip_targets)``
is the task's hook: two dicts of arrays, frame targets with leading axis
``num_frames``.
"""

from __future__ import annotations

import collections
import functools
import math
import sys
import threading
from collections.abc import Callable, Iterator, Sequence

import grain
import numpy as np

from mir_jax.data.datasets import Track

#: Batch keys the pipeline owns; ``targets_fn`` must not return these.
RESERVED_KEYS = ("features", "mask", "lengths", "track_ids", "chunk_starts", "num_frames")

TargetsFn = Callable[[Track, int, float], tuple[dict, dict]]
FeaturesFn = Callable[[Track], np.ndarray]


def _default_features_fn(feature_cfg, cache_dir) -> FeaturesFn:
    """Features from ``mir_jax.audio`` (through its disk cache when ``cache_dir``)."""

    def features(track: Track) -> np.ndarray:
        if cache_dir is not None:
            from mir_jax.audio.cache import cached_features

            return cached_features(track.audio_path, feature_cfg, cache_dir)
        from mir_jax.audio.features import compute_features
        from mir_jax.audio.io import load_audio

        return compute_features(load_audio(track.audio_path, feature_cfg.sample_rate), feature_cfg)

    return features


class _TrackLoader:
    """Loads ``(features, frame targets, clip targets)`` of a track, memoised.

    Feature extraction dominates the cost of a training example, and each
    track is cropped many times, so the most recent ``memory_cache_size``
    tracks are kept in memory. Thread-safe: Grain calls it from its threads.
    """

    def __init__(self, tracks, feature_cfg, targets_fn, features_fn, cache_dir, memory_cache_size):
        self.tracks = list(tracks)
        self.frame_rate = float(feature_cfg.frame_rate)
        self.targets_fn = targets_fn
        self.features_fn = features_fn or _default_features_fn(feature_cfg, cache_dir)
        self.memory_cache_size = int(memory_cache_size)
        self._cache: collections.OrderedDict[int, dict] = collections.OrderedDict()
        self._lock = threading.Lock()

    def __call__(self, index: int) -> dict:
        index = int(index)
        with self._lock:
            if index in self._cache:
                self._cache.move_to_end(index)
                return self._cache[index]
        example = self._load(self.tracks[index])
        if self.memory_cache_size > 0:
            with self._lock:
                self._cache[index] = example
                while len(self._cache) > self.memory_cache_size:
                    self._cache.popitem(last=False)
        return example

    def _load(self, track: Track) -> dict:
        feats = np.asarray(self.features_fn(track), dtype=np.float32)
        if feats.ndim == 2:
            feats = feats[:, :, None]
        if feats.ndim != 3 or feats.shape[0] == 0:
            raise ValueError(
                f"{track.audio_path}: features must be (frames>0, bins, channels), "
                f"got shape {feats.shape}"
            )
        num_frames = feats.shape[0]
        frame_t, clip_t = self.targets_fn(track, num_frames, self.frame_rate)
        frame_t = {k: np.asarray(v) for k, v in dict(frame_t).items()}
        clip_t = {k: np.asarray(v) for k, v in dict(clip_t).items()}
        for name in list(frame_t) + list(clip_t):
            if name in RESERVED_KEYS:
                raise ValueError(f"targets_fn returned reserved batch key {name!r}")
        if set(frame_t) & set(clip_t):
            raise ValueError(
                f"targets_fn returned {sorted(set(frame_t) & set(clip_t))} as both frame and clip targets"
            )
        for name, value in frame_t.items():
            if value.ndim == 0 or value.shape[0] != num_frames:
                raise ValueError(
                    f"track {track.track_id!r}: frame target {name!r} has shape {value.shape}, "
                    f"expected leading axis {num_frames} (the number of feature frames)"
                )
        return {"features": feats, "frame": frame_t, "clip": clip_t, "track_id": track.track_id}


def _pad_to(x: np.ndarray, length: int) -> np.ndarray:
    if x.shape[0] == length:
        return x
    out = np.zeros((length,) + x.shape[1:], dtype=x.dtype)
    out[: x.shape[0]] = x
    return out


def _window(example: dict, start: int, size: int) -> dict:
    """Frames ``[start, start+size)`` of an example, zero-padded to ``size``."""
    n = max(0, min(size, example["features"].shape[0] - start))
    mask = np.zeros(size, dtype=bool)
    mask[:n] = True
    out = {
        "features": _pad_to(example["features"][start : start + n], size),
        "mask": mask,
        "lengths": np.int32(n),
    }
    for name, value in example["frame"].items():
        out[name] = _pad_to(value[start : start + n], size)
    out.update(example["clip"])
    return out


def _check_positive(name, value):
    if isinstance(value, bool) or not isinstance(value, (int, np.integer)) or value <= 0:
        raise ValueError(f"{name} must be a positive integer, got {value!r}")


def _resolve_shard(shard_index, shard_count) -> tuple[int, int]:
    if shard_index is None or shard_count is None:
        import jax

        shard_index = jax.process_index() if shard_index is None else shard_index
        shard_count = jax.process_count() if shard_count is None else shard_count
    _check_positive("shard_count", shard_count)
    if not 0 <= shard_index < shard_count:
        raise ValueError(f"shard_index {shard_index} not in [0, shard_count={shard_count})")
    return int(shard_index), int(shard_count)


class _EpochShuffle:
    """Element index -> track index: a new permutation of ``items`` per epoch.

    Grain's ``MapDataset.shuffle`` does the same with an index-shuffle
    function that takes milliseconds per element on small datasets (measured
    5 ms at 9 elements with grain 0.2.18, the batch rate's bottleneck), so the
    per-epoch permutation is drawn with numpy from ``(seed, epoch)`` instead
    and kept for a few epochs.
    """

    def __init__(self, items: Sequence[int], seed: int):
        self.items = np.asarray(items)
        self.seed = seed
        self._permutation = functools.lru_cache(maxsize=4)(self._draw)

    def _draw(self, epoch: int) -> np.ndarray:
        return self.items[np.random.default_rng([self.seed, epoch]).permutation(len(self.items))]

    def __call__(self, index: int) -> int:
        epoch, i = divmod(int(index), len(self.items))
        return int(self._permutation(epoch)[i])


def train_dataset(
    tracks: Sequence[Track],
    feature_cfg,
    *,
    targets_fn: TargetsFn,
    batch_size: int,
    crop_frames: int,
    seed: int,
    cache_dir=None,
    shard_index: int | None = None,
    shard_count: int | None = None,
    features_fn: FeaturesFn | None = None,
    memory_cache_size: int = 256,
) -> grain.MapDataset:
    """The infinite Grain ``MapDataset`` of training batches (see :func:`train_iterator`)."""
    _check_positive("batch_size", batch_size)
    _check_positive("crop_frames", crop_frames)
    if isinstance(seed, bool) or not isinstance(seed, (int, np.integer)) or not 0 <= seed < 2**32:
        raise ValueError(f"seed must be an integer in [0, 2**32), got {seed!r}")
    shard_index, shard_count = _resolve_shard(shard_index, shard_count)
    tracks = list(tracks)
    if not tracks:
        raise ValueError("train_dataset: no tracks")
    shard = list(range(len(tracks)))[shard_index::shard_count]
    if not shard:
        raise ValueError(
            f"shard {shard_index} of {shard_count} has no tracks ({len(tracks)} tracks in all)"
        )
    loader = _TrackLoader(tracks, feature_cfg, targets_fn, features_fn, cache_dir, memory_cache_size)

    def crop(index, rng: np.random.Generator):
        example = loader(index)
        spare = example["features"].shape[0] - crop_frames
        start = int(rng.integers(0, spare + 1)) if spare > 0 else 0
        return _window(example, start, crop_frames)

    order = _EpochShuffle(shard, int(seed))
    ds = grain.MapDataset.range(sys.maxsize).seed(int(seed)).map(order)
    # the crop runs in random_map so its RNG is Grain's per-index generator:
    # a restored iterator recomputes exactly the same offsets
    return ds.random_map(crop).batch(batch_size, drop_remainder=True)


def train_iterator(
    tracks: Sequence[Track],
    feature_cfg,
    *,
    targets_fn: TargetsFn,
    batch_size: int,
    crop_frames: int,
    seed: int,
    cache_dir=None,
    shard_index: int | None = None,
    shard_count: int | None = None,
    features_fn: FeaturesFn | None = None,
    memory_cache_size: int = 256,
    num_threads: int = 2,
    prefetch_buffer_size: int = 4,
) -> grain.DatasetIterator:
    """Infinite iterator of random-crop training batches, resumable.

    Args:
      tracks: the training tracks (e.g. from ``load_dataset_folder``).
      feature_cfg: a ``mir_jax.audio.features.FeatureConfig`` (its
        ``frame_rate`` is passed to ``targets_fn``).
      targets_fn: ``(track, num_frames, frame_rate) -> (frame_targets, clip_targets)``.
      batch_size: examples per batch (every batch is full).
      crop_frames: frames per training example; a longer track is cropped at a
        random offset, a shorter one zero-padded (``mask`` False there).
      seed: shuffling and crop seed; the order changes every epoch.
      cache_dir: feature cache folder for ``mir_jax.audio.cache.cached_features``.
      shard_index, shard_count: this host's shard of the tracks (track ``i``
        goes to shard ``i % shard_count``); ``None`` means
        ``jax.process_index()`` / ``jax.process_count()``.
      features_fn: ``track -> (frames, bins[, channels])`` array, replacing the
        audio feature extraction (tests, precomputed features).
      memory_cache_size: how many tracks' features to keep in memory (a
        3-minute track of 80 mel bands at 50 fps is about 3 MB).
      num_threads, prefetch_buffer_size: Grain ``ReadOptions`` (threads and
        batches read ahead).

    Returns:
      A Grain ``DatasetIterator``: ``next(it)`` gives a batch dict;
      ``it.get_state()`` a JSON-serialisable dict; ``it.set_state(state)``
      resumes a fresh iterator built with the same arguments.
    """
    ds = train_dataset(
        tracks,
        feature_cfg,
        targets_fn=targets_fn,
        batch_size=batch_size,
        crop_frames=crop_frames,
        seed=seed,
        cache_dir=cache_dir,
        shard_index=shard_index,
        shard_count=shard_count,
        features_fn=features_fn,
        memory_cache_size=memory_cache_size,
    )
    options = grain.ReadOptions(num_threads=num_threads, prefetch_buffer_size=prefetch_buffer_size)
    return iter(ds.to_iter_dataset(options))


# ---------------------------------------------------------------- evaluation


def chunk_starts(num_frames: int, chunk_frames: int, overlap: int) -> list[int]:
    """Start frames of the chunks covering ``num_frames`` frames.

    Chunks are ``chunk_frames`` long with hop ``chunk_frames - overlap``; the
    last chunk may run past the end (it is zero-padded).
    """
    _check_positive("chunk_frames", chunk_frames)
    if not 0 <= overlap < chunk_frames:
        raise ValueError(f"chunk_overlap {overlap} must be in [0, chunk_frames={chunk_frames})")
    hop = chunk_frames - overlap
    n = 1 if num_frames <= chunk_frames else 1 + math.ceil((num_frames - chunk_frames) / hop)
    return [k * hop for k in range(n)]


def stitch_chunks(chunks: Sequence[np.ndarray], starts: Sequence[int], num_frames: int, overlap: int) -> np.ndarray:
    """Reassemble per-chunk frame predictions into one ``(num_frames, ...)`` array.

    ``chunks[k]`` is the prediction for the chunk starting at ``starts[k]``
    (as in a batch's ``chunk_starts``), in order. In each overlap the first
    ``overlap // 2`` frames come from the earlier chunk and the rest from the
    later one, so every frame is taken from the chunk where it is farther from
    an edge (where a recurrent model has the most context).
    """
    if len(chunks) != len(starts) or not len(chunks):
        raise ValueError(f"{len(chunks)} chunks but {len(starts)} starts")
    order = np.argsort(np.asarray(starts), kind="stable")
    chunks = [np.asarray(chunks[i]) for i in order]
    starts = [int(starts[i]) for i in order]
    size = chunks[0].shape[0]
    out = np.zeros((num_frames,) + chunks[0].shape[1:], dtype=chunks[0].dtype)
    last = len(chunks) - 1
    for k, (start, chunk) in enumerate(zip(starts, chunks)):
        lo = 0 if k == 0 else overlap // 2
        hi = size if k == last else size - (overlap - overlap // 2)
        hi = min(hi, num_frames - start)
        if hi > lo:
            out[start + lo : start + hi] = chunk[lo:hi]
    return out


def _collate(rows: list[dict], frame_keys, length: int, batch_size: int | None) -> dict:
    """Pad the frame arrays of ``rows`` to ``length`` frames and stack them.

    With ``batch_size``, a short batch is filled with empty rows (all zeros).
    """
    rows = list(rows)
    if batch_size is not None and len(rows) < batch_size:
        blank = {k: np.zeros_like(v) for k, v in rows[0].items() if k != "track_id"}
        blank["track_id"] = ""
        rows += [blank] * (batch_size - len(rows))
    batch = {"track_ids": [r["track_id"] for r in rows]}
    for key in rows[0]:
        if key == "track_id":
            continue
        values = [r[key] for r in rows]
        if key in frame_keys:
            values = [_pad_to(v, length) for v in values]
        batch[key] = np.stack(values)
    return batch


def eval_batches(
    tracks: Sequence[Track],
    feature_cfg,
    *,
    targets_fn: TargetsFn,
    batch_size: int,
    chunk_frames: int | None = None,
    chunk_overlap: int | None = None,
    cache_dir=None,
    features_fn: FeaturesFn | None = None,
    pad_to_multiple: int = 1,
    pad_batch: bool = False,
) -> Iterator[dict]:
    """Batches of whole tracks (or chunks of them), in track order, for evaluation.

    Without ``chunk_frames``: one row per track, padded to the longest track in
    the batch (rounded up to ``pad_to_multiple`` frames, to bound the number of
    shapes a jitted model sees). With ``chunk_frames``: each track is cut into
    chunks of ``chunk_frames`` frames overlapping by ``chunk_overlap`` (default
    ``chunk_frames // 4``), see :func:`chunk_starts`; rows are chunks, batches
    may mix tracks, and ``chunk_starts (B,) int32`` and ``num_frames (B,)
    int32`` (the whole track's length) are added so predictions can be put back
    with :func:`stitch_chunks`. Clip targets are repeated on every chunk.

    Every batch has ``track_ids`` (a list of B strings). The last batch is
    smaller unless ``pad_batch``, which fills it with empty rows (track id
    ``''``, mask all False, length 0).
    """
    _check_positive("batch_size", batch_size)
    _check_positive("pad_to_multiple", pad_to_multiple)
    if chunk_frames is not None:
        _check_positive("chunk_frames", chunk_frames)
        if chunk_overlap is None:
            chunk_overlap = chunk_frames // 4
        chunk_starts(1, chunk_frames, chunk_overlap)  # validates the overlap early
    loader = _TrackLoader(tracks, feature_cfg, targets_fn, features_fn, cache_dir, memory_cache_size=0)
    fill = batch_size if pad_batch else None
    frame_keys = {"features", "mask"}

    def rows():
        for i in range(len(loader.tracks)):
            example = loader(i)
            n = example["features"].shape[0]
            frame_keys.update(example["frame"])
            if chunk_frames is None:
                row = _window(example, 0, n)
                row["track_id"] = example["track_id"]
                yield row
                continue
            for start in chunk_starts(n, chunk_frames, chunk_overlap):
                row = _window(example, start, chunk_frames)
                row["track_id"] = example["track_id"]
                row["chunk_starts"] = np.int32(start)
                row["num_frames"] = np.int32(n)
                yield row

    def _finish(pending):
        if chunk_frames is not None:
            length = chunk_frames
        else:
            longest = max(r["features"].shape[0] for r in pending)
            length = -(-longest // pad_to_multiple) * pad_to_multiple
        return _collate(pending, frame_keys, length, fill)

    def batches():
        pending: list[dict] = []
        for row in rows():
            pending.append(row)
            if len(pending) == batch_size:
                yield _finish(pending)
                pending = []
        if pending:
            yield _finish(pending)

    # a plain function returning a generator, so bad arguments fail at the call
    return batches()
