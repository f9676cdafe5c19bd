"""Readers and writers of mir_jax.data.annotations: good files, malformed files, round trips."""

import json

import mir_eval
import numpy as np
import pytest

from mir_jax.data import annotations as A


def _write(tmp_path, name, text):
    p = tmp_path / name
    p.write_text(text, encoding="utf-8")
    return p


def _assert_error_at(exc_info, path, line):
    msg = str(exc_info.value)
    assert isinstance(exc_info.value, ValueError)
    assert msg.startswith(f"{path}:{line}:"), msg


# ---------------------------------------------------------------- onsets and beats


def test_read_onsets_sorts_skips_comments_and_blank_lines(tmp_path):
    p = _write(tmp_path, "a.onsets", "# onsets\n0.5\n\n0.25\t extra\n  1.0  \n")
    np.testing.assert_array_equal(A.read_onsets(p), [0.25, 0.5, 1.0])


def test_read_onsets_matches_mir_eval_loader(tmp_path):
    p = _write(tmp_path, "b.onsets", "0.1\n0.35\n0.9\n2.125\n")
    np.testing.assert_allclose(A.read_onsets(p), mir_eval.io.load_events(str(p)))


def test_read_onsets_empty_file_gives_empty_array(tmp_path):
    p = _write(tmp_path, "e.onsets", "")
    assert A.read_onsets(p).shape == (0,)


@pytest.mark.parametrize("text,line", [("0.1\nabc\n", 2), ("0.1\n0.2\n-0.3\n", 3), ("nan\n", 1)])
def test_read_onsets_malformed_names_file_and_line(tmp_path, text, line):
    p = _write(tmp_path, "bad.onsets", text)
    with pytest.raises(A.AnnotationError) as e:
        A.read_onsets(p)
    _assert_error_at(e, p, line)


def test_read_onsets_missing_file_names_it(tmp_path):
    with pytest.raises(A.AnnotationError, match="nope.onsets"):
        A.read_onsets(tmp_path / "nope.onsets")


def test_onsets_round_trip(tmp_path):
    times = np.array([1.5, 0.0, 0.123456, 3.25])
    A.write_onsets(tmp_path / "sub" / "x.onsets", times)
    np.testing.assert_allclose(A.read_onsets(tmp_path / "sub" / "x.onsets"), np.sort(times), atol=1e-6)


def test_read_beats_ignores_position_column(tmp_path):
    p = _write(tmp_path, "a.beats", "0.5 1\n1.0\t2\n1.5 3\n2.0 4\n")
    np.testing.assert_array_equal(A.read_beats(p), [0.5, 1.0, 1.5, 2.0])
    ref, _ = mir_eval.io.load_labeled_events(str(p))
    np.testing.assert_allclose(A.read_beats(p), ref)


def test_beats_round_trip_with_positions(tmp_path):
    A.write_beats(tmp_path / "b.beats", [0.5, 1.0, 1.5], positions=[1, 2, 3])
    lines = (tmp_path / "b.beats").read_text().splitlines()
    assert [ln.split("\t")[1] for ln in lines] == ["1", "2", "3"]
    np.testing.assert_allclose(A.read_beats(tmp_path / "b.beats"), [0.5, 1.0, 1.5])


def test_read_beats_malformed(tmp_path):
    p = _write(tmp_path, "bad.beats", "0.5 1\nx 2\n")
    with pytest.raises(A.AnnotationError) as e:
        A.read_beats(p)
    _assert_error_at(e, p, 2)


# ---------------------------------------------------------------- chords

ISOPHONICS_LAB = """0.000000 2.612267 N
2.612267 11.459070 E
11.459070 12.921927 A
12.921927 17.443474 E:7/b7
17.443474 20.410362 B:min7
20.410362 21.0 C#:maj
"""


def test_read_chord_lab_matches_mir_eval(tmp_path):
    p = _write(tmp_path, "song.lab", ISOPHONICS_LAB)
    intervals, labels = A.read_chord_lab(p)
    ref_intervals, ref_labels = mir_eval.io.load_labeled_intervals(str(p))
    np.testing.assert_allclose(intervals, ref_intervals)
    assert labels == ref_labels
    assert labels[3] == "E:7/b7" and labels[-1] == "C#:maj"  # '#' is not a comment


def test_read_chord_lab_tabs_and_comments(tmp_path):
    p = _write(tmp_path, "t.lab", "# header\n0.0\t1.0\tC:maj\n\n1.0\t2.5\tX\n")
    intervals, labels = A.read_chord_lab(p)
    np.testing.assert_array_equal(intervals, [[0.0, 1.0], [1.0, 2.5]])
    assert labels == ["C:maj", "X"]


@pytest.mark.parametrize(
    "bad_line,needle",
    [
        ("1.0 2.0", "fields"),
        ("1.0 two C:maj", "not a number"),
        ("2.0 1.0 C:maj", "bad interval"),
        ("1.0 2.0 H:maj", "invalid chord label"),
        ("1.0 2.0 C:notaquality", "invalid chord label"),
        ("1.0 2.0 C:maj extra", "fields"),
    ],
)
def test_read_chord_lab_malformed(tmp_path, bad_line, needle):
    p = _write(tmp_path, "bad.lab", f"0.0 1.0 N\n{bad_line}\n")
    with pytest.raises(A.AnnotationError, match=needle) as e:
        A.read_chord_lab(p)
    _assert_error_at(e, p, 2)


def test_chord_lab_round_trip_readable_by_mir_eval(tmp_path):
    intervals = np.array([[0.0, 1.25], [1.25, 3.0], [3.0, 4.5]])
    labels = ["N", "Bb:min7/b3", "F#:maj"]
    p = tmp_path / "out.lab"
    A.write_chord_lab(p, intervals, labels)
    ref_i, ref_l = mir_eval.io.load_labeled_intervals(str(p))
    np.testing.assert_allclose(ref_i, intervals)
    assert ref_l == labels
    got_i, got_l = A.read_chord_lab(p)
    np.testing.assert_allclose(got_i, intervals)
    assert got_l == labels


def test_write_chord_lab_rejects_mismatch_and_whitespace(tmp_path):
    with pytest.raises(ValueError):
        A.write_chord_lab(tmp_path / "x.lab", [[0, 1]], ["C:maj", "D:min"])
    with pytest.raises(ValueError):
        A.write_chord_lab(tmp_path / "x.lab", [[0, 1]], ["C maj"])
    assert not (tmp_path / "x.lab").exists()


def test_chord_sequence_round_trip(tmp_path):
    seq = [("C:maj", 2.0, 4.0), ("A:min", 1.0, 2.0), ("G:7", 0.5, 1.0)]
    p = tmp_path / "seq.txt"
    A.write_chord_sequence(p, seq)
    assert p.read_text().splitlines()[1].split("\t") == ["A:min", "1.000000", "2"]
    assert A.read_chord_sequence(p) == seq


@pytest.mark.parametrize("line", ["C:maj\t2.0", "C:maj\tx\t4", "Q:maj\t2.0\t4", "C:maj\t-1\t4"])
def test_chord_sequence_malformed(tmp_path, line):
    p = _write(tmp_path, "seq.txt", f"G:maj\t1.0\t2\n{line}\n")
    with pytest.raises(A.AnnotationError) as e:
        A.read_chord_sequence(p)
    _assert_error_at(e, p, 2)


# ---------------------------------------------------------------- keys


@pytest.mark.parametrize(
    "text,expected",
    [
        ("Bb major\n", "Bb major"),
        ("f# minor", "F# minor"),
        ("E:minor", "E minor"),
        ("C:aeolian", "C minor"),
        ("D:dorian", "D other"),
        ("Cb major", "B major"),
        ("X", "X"),
    ],
)
def test_read_key_giantsteps(tmp_path, text, expected):
    p = _write(tmp_path, "k.key", text)
    key = A.read_key(p)
    assert key == expected
    mir_eval.key.validate_key(key)


def test_read_key_isophonics_lab_picks_longest_key(tmp_path):
    p = _write(
        tmp_path,
        "k.lab",
        "0.0\t0.5\tSilence\n0.5\t60.0\tKey\tE\n60.0\t150.0\tKey\tA:minor\n150.0\t170.0\tKey\tE\n",
    )
    assert A.read_key(p) == "A minor"
    intervals, keys = A.read_key_lab(p)
    assert keys == ["X", "E major", "A minor", "E major"]
    np.testing.assert_array_equal(intervals[1], [0.5, 60.0])


def test_read_key_lab_only_silence_is_x(tmp_path):
    assert A.read_key(_write(tmp_path, "s.lab", "0.0 10.0 Silence\n0.0 0.0 Silence\n")) == "X"


@pytest.mark.parametrize(
    "text,line",
    [("H major\n", 1), ("C mixed\n", 1), ("0 1 Key C\n1 2 Chord C\n", 2), ("0 1 Key C\n1 x Key D\n", 2)],
)
def test_read_key_malformed(tmp_path, text, line):
    p = _write(tmp_path, "bad.key", text)
    with pytest.raises(A.AnnotationError) as e:
        A.read_key(p)
    _assert_error_at(e, p, line)


def test_read_key_empty_file(tmp_path):
    with pytest.raises(A.AnnotationError, match="empty"):
        A.read_key(_write(tmp_path, "e.key", "\n"))


def test_key_round_trip_and_key_lab_round_trip(tmp_path):
    A.write_key(tmp_path / "a.key", "eb:minor")
    assert (tmp_path / "a.key").read_text() == "Eb minor\n"
    assert A.read_key(tmp_path / "a.key") == "Eb minor"
    A.write_key_lab(tmp_path / "b.lab", [[0, 1], [1, 9]], ["X", "G major"])
    assert A.read_key_lab(tmp_path / "b.lab")[1] == ["X", "G major"]


# ---------------------------------------------------------------- tags


def test_tags_csv_round_trip_with_awkward_names(tmp_path):
    names = ["rock", "no voice", "drum,bass"]
    m = np.array([[1, 0, 1], [0, 1, 0]], dtype=np.int8)
    A.write_tags_csv(tmp_path / "tags.csv", ["t1", "t2"], names, m)
    assert (tmp_path / "tags.csv").read_text().splitlines()[0] == 'track,rock,no voice,"drum,bass"'
    ids, got_names, got = A.read_tags_csv(tmp_path / "tags.csv")
    assert ids == ["t1", "t2"] and got_names == names
    assert got.dtype == np.int8
    np.testing.assert_array_equal(got, m)


@pytest.mark.parametrize(
    "text,line",
    [
        ("track,a,b\nt1,1,0\nt2,1\n", 3),
        ("track,a,b\nt1,1,2\n", 2),
        ("id,a\nt1,1\n", 1),
        ("track,a,a\nt1,1,1\n", 1),
    ],
)
def test_tags_csv_malformed(tmp_path, text, line):
    p = _write(tmp_path, "tags.csv", text)
    with pytest.raises(A.AnnotationError) as e:
        A.read_tags_csv(p)
    _assert_error_at(e, p, line)


MTAT = (
    '"clip_id"\t"no voice"\t"singer"\t"duet"\t"mp3_path"\n'
    '"2"\t"0"\t"0"\t"0"\t"f/american_bach_soloists-j_s__bach_solo_cantatas-01-bwv54__i_aria-30-59.mp3"\n'
    '"6"\t"1"\t"0"\t"1"\t"f/american_bach_soloists-j_s__bach_solo_cantatas-01-bwv54__i_aria-88-117.mp3"\n'
)


def test_read_magnatagatune(tmp_path):
    p = _write(tmp_path, "annotations_final.csv", MTAT)
    ids, names, m, paths = A.read_magnatagatune_csv(p)
    assert ids == ["2", "6"]
    assert names == ["no voice", "singer", "duet"]
    np.testing.assert_array_equal(m, [[0, 0, 0], [1, 0, 1]])
    assert paths[1].endswith("aria-88-117.mp3") and paths[0].startswith("f/")


def test_magnatagatune_round_trip_and_unquoted(tmp_path):
    p = _write(tmp_path, "plain.csv", MTAT.replace('"', ""))
    ids, names, m, paths = A.read_magnatagatune_csv(p)
    A.write_magnatagatune_csv(tmp_path / "out.csv", ids, names, m, paths)
    assert (tmp_path / "out.csv").read_text() == MTAT
    assert A.read_magnatagatune_csv(tmp_path / "out.csv")[0] == ["2", "6"]


@pytest.mark.parametrize(
    "text,line",
    [
        ('"clip_id"\t"a"\n"1"\t"0"\n', 1),  # no mp3_path column
        ('"clip_id"\t"a"\t"mp3_path"\n"1"\t"0"\t"x.mp3"\n"2"\t"yes"\t"y.mp3"\n', 3),
        ('"clip_id"\t"a"\t"mp3_path"\n"1"\t"0"\n', 2),
    ],
)
def test_magnatagatune_malformed(tmp_path, text, line):
    p = _write(tmp_path, "bad.csv", text)
    with pytest.raises(A.AnnotationError) as e:
        A.read_magnatagatune_csv(p)
    _assert_error_at(e, p, line)


# ---------------------------------------------------------------- JAMS


def _jams_doc(dense=False):
    chords = {"time": [0.0, 2.0], "duration": [2.0, 1.5], "value": ["C:maj", "A:min"],
              "confidence": [None, None]}
    if not dense:
        chords = [{"time": t, "duration": d, "value": v, "confidence": None}
                  for t, d, v in zip(chords["time"], chords["duration"], chords["value"])]
    return {
        "file_metadata": {"duration": 3.5, "title": "x"},
        "annotations": [
            {"namespace": "beat", "data": [{"time": 0.5, "duration": 0, "value": 1}]},
            {"namespace": "chord", "data": chords},
            {"namespace": "key_mode", "data": [{"time": 0, "duration": 3.0, "value": "A:minor"},
                                                {"time": 3.0, "duration": 0.5, "value": "C:major"}]},
            {"namespace": "onset", "data": [{"time": 1.0, "duration": 0, "value": None},
                                            {"time": 0.25, "duration": 0, "value": None}]},
            {"namespace": "tag_open", "data": [{"time": 0, "duration": 3.5, "value": "rock"},
                                               {"time": 0, "duration": 3.5, "value": "guitar"}]},
            {"namespace": "tag_gtzan", "data": [{"time": 0, "duration": 3.5, "value": "rock"}]},
        ],
    }


@pytest.mark.parametrize("dense", [False, True])
def test_read_jams(tmp_path, dense):
    p = _write(tmp_path, "t.jams", json.dumps(_jams_doc(dense)))
    intervals, labels = A.read_jams_chords(p)
    np.testing.assert_allclose(intervals, [[0.0, 2.0], [2.0, 3.5]])
    assert labels == ["C:maj", "A:min"]
    assert A.read_jams_key(p) == "A minor"
    np.testing.assert_array_equal(A.read_jams_onsets(p), [0.25, 1.0])
    assert A.read_jams_tags(p) == ["rock", "guitar"]
    assert A.jams_duration(p) == 3.5


def test_jams_round_trip(tmp_path):
    p = tmp_path / "w.jams"
    A.write_jams(p, duration=4.0, chords=([[0, 1], [1, 4]], ["N", "D:min"]), key="Bb major",
                 onsets=[0.5, 0.1], tags=["jazz"])
    doc = json.loads(p.read_text())
    assert {a["namespace"] for a in doc["annotations"]} == {"chord", "key_mode", "onset", "tag_open"}
    assert A.read_jams_chords(p)[1] == ["N", "D:min"]
    assert A.read_jams_key(p) == "Bb major"
    np.testing.assert_allclose(A.read_jams_onsets(p), [0.1, 0.5])
    assert A.read_jams_tags(p) == ["jazz"]


def test_jams_malformed(tmp_path):
    p = _write(tmp_path, "bad.jams", '{"annotations": [\n  {"namespace": "chord",\n}')
    with pytest.raises(A.AnnotationError) as e:
        A.read_jams_chords(p)
    assert str(e.value).startswith(f"{p}:3:")
    doc = _jams_doc()
    doc["annotations"][1]["data"][1]["value"] = "Z:maj"
    p2 = _write(tmp_path, "badchord.jams", json.dumps(doc))
    with pytest.raises(A.AnnotationError, match="invalid chord 'Z:maj'"):
        A.read_jams_chords(p2)
    p3 = _write(tmp_path, "nokey.jams", json.dumps({"annotations": []}))
    with pytest.raises(A.AnnotationError, match="key_mode"):
        A.read_jams_key(p3)


# ---------------------------------------------------------------- atomic writes


def test_atomic_write_keeps_old_file_when_replace_fails(tmp_path, monkeypatch):
    p = tmp_path / "a.onsets"
    A.write_onsets(p, [0.5])

    def crash(src, dst):
        raise OSError("disk full")

    monkeypatch.setattr(A.os, "replace", crash)
    with pytest.raises(OSError):
        A.write_onsets(p, [1.0, 2.0])
    monkeypatch.undo()
    np.testing.assert_array_equal(A.read_onsets(p), [0.5])
    assert sorted(x.name for x in tmp_path.iterdir()) == ["a.onsets"]


def test_tags_csv_bad_value_names_column(tmp_path):
    p = _write(tmp_path, "tags.csv", "track,a,b,c\nt1,1,0,1\nt2,0,1,x\n")
    with pytest.raises(A.AnnotationError, match=r":3: tag value 'x' in column 4"):
        A.read_tags_csv(p)


def test_tags_csv_header_only(tmp_path):
    ids, names, m = A.read_tags_csv(_write(tmp_path, "tags.csv", "track,a,b\n"))
    assert ids == [] and names == ["a", "b"] and m.shape == (0, 2)
