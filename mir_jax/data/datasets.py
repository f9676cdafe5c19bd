"""Dataset folders: audio plus annotations, read into :class:`Track` records.

Layout of a dataset root ``DIR`` (the synthetic generator writes it; a user's
own dataset uses the same names, with any subset of the annotation folders)::

    DIR/audio/<track>.wav            (also .flac .ogg .mp3 .aif/.aiff)
    DIR/onsets/<track>.onsets        one onset time per line
    DIR/chords/<track>.lab           start end label
    DIR/keys/<track>.key             'Bb major' (or an Isophonics key .lab)
    DIR/chord_sequences/<track>.txt  label<TAB>seconds<TAB>beats
    DIR/tags.csv                     track,<tag1>,<tag2>,... with 0/1 values
    DIR/jams/<track>.jams            optional JAMS collection
    DIR/manifest.json                optional metadata (not needed to load)

A track is any audio file; its annotations are optional (``None`` when
absent). A JAMS file fills in the chords, key, onsets and tags that the
per-task folders do not give. An annotation file without matching audio is
an error naming that file (usually a misspelt track id).
"""

from __future__ import annotations

import dataclasses
import os
from pathlib import Path

import numpy as np

from mir_jax.data import annotations

AUDIO_EXTENSIONS = (".wav", ".flac", ".ogg", ".mp3", ".aif", ".aiff")

# annotation folder -> file suffix of its files
_FOLDERS = {
    "onsets": ".onsets",
    "chords": ".lab",
    "keys": ".key",
    "chord_sequences": ".txt",
    "jams": ".jams",
}


@dataclasses.dataclass
class Track:
    """One audio file and whatever annotations it has.

    ``tags`` is a ``(num_tags,)`` int8 vector aligned with the dataset's
    ``tag_names``; ``chord_sequence`` is a list of
    ``(label, duration_seconds, duration_beats)``.
    """

    track_id: str
    audio_path: str
    onsets: np.ndarray | None = None
    chord_intervals: np.ndarray | None = None
    chord_labels: list[str] | None = None
    key: str | None = None
    tags: np.ndarray | None = None
    chord_sequence: list[tuple[str, float, float]] | None = None


class DatasetError(ValueError):
    """A dataset folder that cannot be loaded; the message names the file."""


def _index_folder(folder: Path, suffixes) -> dict[str, Path]:
    files: dict[str, Path] = {}
    for p in sorted(folder.iterdir()):
        if p.name.startswith(".") or not p.is_file():
            continue
        if p.suffix.lower() not in suffixes:
            continue
        if p.stem in files:
            raise DatasetError(f"{p}: duplicate track id {p.stem!r} (also {files[p.stem]})")
        files[p.stem] = p
    return files


def _apply_jams(track: Track, path: Path, jams_tags: dict[str, list[str]]) -> None:
    doc = annotations.load_jams(path)
    namespaces = {a.get("namespace", "") for a in doc.get("annotations", []) if isinstance(a, dict)}
    if track.chord_labels is None and namespaces & set(annotations.CHORD_NAMESPACES):
        track.chord_intervals, track.chord_labels = annotations.read_jams_chords(path)
    if track.key is None and "key_mode" in namespaces:
        track.key = annotations.read_jams_key(path)
    if track.onsets is None and "onset" in namespaces:
        track.onsets = annotations.read_jams_onsets(path)
    if any(ns.startswith("tag_") for ns in namespaces):
        jams_tags[track.track_id] = annotations.read_jams_tags(path)


def load_dataset_folder(root) -> tuple[list[Track], list[str]]:
    """Load a dataset folder: ``(tracks sorted by track id, tag_names)``.

    ``tag_names`` comes from ``tags.csv``; without it, from the sorted union of
    JAMS ``tag_*`` values; otherwise it is empty. Raises
    :class:`DatasetError` or :class:`~mir_jax.data.annotations.AnnotationError`
    naming the offending file.
    """
    root = Path(root)
    audio_dir = root / "audio"
    if not audio_dir.is_dir():
        raise DatasetError(f"{audio_dir}: dataset folder has no 'audio' subfolder")
    audio = _index_folder(audio_dir, AUDIO_EXTENSIONS)
    if not audio:
        raise DatasetError(f"{audio_dir}: no audio files ({', '.join(AUDIO_EXTENSIONS)})")
    tracks = {tid: Track(track_id=tid, audio_path=os.fspath(p)) for tid, p in audio.items()}

    for folder, suffix in _FOLDERS.items():
        if folder == "jams" or not (root / folder).is_dir():
            continue
        for tid, path in _index_folder(root / folder, (suffix,)).items():
            if tid not in tracks:
                raise DatasetError(f"{path}: no audio file for track {tid!r} in {audio_dir}")
            t = tracks[tid]
            if folder == "onsets":
                t.onsets = annotations.read_onsets(path)
            elif folder == "chords":
                t.chord_intervals, t.chord_labels = annotations.read_chord_lab(path)
            elif folder == "keys":
                t.key = annotations.read_key(path)
            elif folder == "chord_sequences":
                t.chord_sequence = annotations.read_chord_sequence(path)

    jams_tags: dict[str, list[str]] = {}
    if (root / "jams").is_dir():
        for tid, path in _index_folder(root / "jams", (".jams",)).items():
            if tid not in tracks:
                raise DatasetError(f"{path}: no audio file for track {tid!r} in {audio_dir}")
            _apply_jams(tracks[tid], path, jams_tags)

    tag_names: list[str] = []
    tags_csv = root / "tags.csv"
    if tags_csv.is_file():
        ids, tag_names, matrix = annotations.read_tags_csv(tags_csv)
        for lineno, (tid, row) in enumerate(zip(ids, matrix), start=2):
            if tid not in tracks:
                raise DatasetError(f"{tags_csv}:{lineno}: no audio file for track {tid!r}")
            tracks[tid].tags = row.copy()
    elif jams_tags:
        tag_names = sorted({t for tags in jams_tags.values() for t in tags})
        col = {name: j for j, name in enumerate(tag_names)}
        for tid, tags in jams_tags.items():
            vec = np.zeros(len(tag_names), dtype=np.int8)
            vec[[col[t] for t in tags]] = 1
            tracks[tid].tags = vec

    return [tracks[tid] for tid in sorted(tracks)], list(tag_names)
