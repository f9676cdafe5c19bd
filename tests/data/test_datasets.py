"""Dataset folders -> Track records (mir_jax.data.datasets)."""

import json

import numpy as np
import pytest
import soundfile as sf

from mir_jax.data import annotations as A
from mir_jax.data.datasets import DatasetError, Track, load_dataset_folder


def _audio(root, tid, seconds=0.2, sr=8000, ext="wav"):
    (root / "audio").mkdir(parents=True, exist_ok=True)
    path = root / "audio" / f"{tid}.{ext}"
    sf.write(path, np.zeros(int(seconds * sr), dtype=np.float32), sr)
    return path


def _synth_layout(root):
    ids = ["synth_s0_00001", "synth_s0_00000"]
    for tid in ids:
        _audio(root, tid)
    A.write_onsets(root / "onsets" / f"{ids[0]}.onsets", [0.1, 0.05])
    A.write_chord_lab(root / "chords" / f"{ids[0]}.lab", [[0, 0.1], [0.1, 0.2]], ["C:maj", "G:7"])
    A.write_key(root / "keys" / f"{ids[1]}.key", "F# minor")
    A.write_chord_sequence(root / "chord_sequences" / f"{ids[0]}.txt", [("C:maj", 0.1, 0.5)])
    A.write_tags_csv(root / "tags.csv", ids, ["rock", "piano"], [[1, 0], [0, 1]])
    (root / "manifest.json").write_text(json.dumps({"seed": 0}))
    return ids


def test_load_synth_layout(tmp_path):
    _synth_layout(tmp_path)
    tracks, tag_names = load_dataset_folder(tmp_path)
    assert [t.track_id for t in tracks] == ["synth_s0_00000", "synth_s0_00001"]
    assert tag_names == ["rock", "piano"]
    t0, t1 = tracks
    assert isinstance(t0, Track) and t0.audio_path.endswith("audio/synth_s0_00000.wav")
    assert t0.key == "F# minor" and t0.onsets is None and t0.chord_labels is None
    np.testing.assert_array_equal(t0.tags, [0, 1])
    np.testing.assert_allclose(t1.onsets, [0.05, 0.1])
    assert t1.chord_labels == ["C:maj", "G:7"]
    np.testing.assert_allclose(t1.chord_intervals, [[0, 0.1], [0.1, 0.2]])
    assert t1.key is None
    assert t1.chord_sequence == [("C:maj", 0.1, 0.5)]
    np.testing.assert_array_equal(t1.tags, [1, 0])


def test_audio_only_dataset_and_other_formats(tmp_path):
    _audio(tmp_path, "b", ext="flac")
    _audio(tmp_path, "a", ext="ogg")
    (tmp_path / "audio" / "notes.txt").write_text("ignored")
    tracks, tag_names = load_dataset_folder(tmp_path)
    assert [t.track_id for t in tracks] == ["a", "b"]
    assert tag_names == [] and all(t.tags is None for t in tracks)


def test_jams_collection(tmp_path):
    _audio(tmp_path, "x")
    _audio(tmp_path, "y")
    A.write_jams(tmp_path / "jams" / "x.jams", duration=0.2, chords=([[0, 0.2]], ["A:min"]),
                 key="A minor", onsets=[0.1], tags=["rock", "calm"])
    A.write_jams(tmp_path / "jams" / "y.jams", duration=0.2, tags=["jazz"])
    tracks, tag_names = load_dataset_folder(tmp_path)
    assert tag_names == ["calm", "jazz", "rock"]
    x, y = tracks
    assert x.chord_labels == ["A:min"] and x.key == "A minor"
    np.testing.assert_allclose(x.onsets, [0.1])
    np.testing.assert_array_equal(x.tags, [1, 0, 1])
    np.testing.assert_array_equal(y.tags, [0, 1, 0])
    assert y.chord_labels is None and y.key is None


def test_folder_annotations_take_precedence_over_jams(tmp_path):
    _audio(tmp_path, "x")
    A.write_key(tmp_path / "keys" / "x.key", "C major")
    A.write_jams(tmp_path / "jams" / "x.jams", duration=0.2, key="D minor")
    assert load_dataset_folder(tmp_path)[0][0].key == "C major"


def test_missing_audio_folder(tmp_path):
    with pytest.raises(DatasetError, match="audio"):
        load_dataset_folder(tmp_path)
    (tmp_path / "audio").mkdir()
    with pytest.raises(DatasetError, match="no audio files"):
        load_dataset_folder(tmp_path)


def test_orphan_annotation_names_the_file(tmp_path):
    _audio(tmp_path, "a")
    A.write_onsets(tmp_path / "onsets" / "b.onsets", [0.1])
    with pytest.raises(DatasetError, match=r"onsets/b\.onsets"):
        load_dataset_folder(tmp_path)


def test_tags_csv_unknown_track_names_file_and_line(tmp_path):
    _audio(tmp_path, "a")
    A.write_tags_csv(tmp_path / "tags.csv", ["a", "zz"], ["t"], [[1], [0]])
    with pytest.raises(DatasetError, match=r"tags\.csv:3"):
        load_dataset_folder(tmp_path)


def test_malformed_annotation_propagates_file_and_line(tmp_path):
    _audio(tmp_path, "a")
    (tmp_path / "chords").mkdir()
    (tmp_path / "chords" / "a.lab").write_text("0 1 C:maj\n1 2 C:wat\n")
    with pytest.raises(A.AnnotationError, match=r"a\.lab:2:"):
        load_dataset_folder(tmp_path)


def test_duplicate_track_id(tmp_path):
    _audio(tmp_path, "a", ext="wav")
    _audio(tmp_path, "a", ext="flac")
    with pytest.raises(DatasetError, match="duplicate track id"):
        load_dataset_folder(tmp_path)


def test_broken_jams_names_file_and_line(tmp_path):
    _audio(tmp_path, "x")
    (tmp_path / "jams").mkdir()
    (tmp_path / "jams" / "x.jams").write_text('{"annotations": [\n oops\n]}')
    with pytest.raises(A.AnnotationError, match=r"x\.jams:2:"):
        load_dataset_folder(tmp_path)
