"""Readers and writers for MIR annotation files.

Formats (every reader names the file and line of a malformed entry by raising
:class:`AnnotationError`; every writer writes atomically and produces what the
matching reader reads back):

* onsets: one time in seconds per line (extra columns ignored), ``#`` comments;
* beats: ``time [beat_position]`` per line; the time column is returned;
* chord ``.lab`` (Isophonics / MIREX): ``start end label`` separated by spaces
  or tabs; labels are Harte syntax, validated with :mod:`mir_eval.chord`;
* key: GiantSteps one-liner (``Bb major``, ``e minor``, ``C:minor``) or an
  Isophonics key ``.lab`` (``start end Key E:minor`` / ``start end Silence``);
  returned in mir_eval form (``'Bb major'``, ``'E minor'``, ``'X'``);
* tags CSV: comma-separated, header ``track,<tag1>,...``, 0/1 values;
* MagnaTagATune ``annotations_final.csv``: tab-separated, optionally quoted,
  ``clip_id``, binary tag columns, ``mp3_path``;
* chord sequences: ``label<TAB>duration_seconds<TAB>duration_beats``;
* JAMS: JSON with ``annotations`` of namespaces ``chord``/``chord_harte``,
  ``key_mode``, ``onset``, ``tag_*``; observations as a list of records or in
  the dense (columnar) form. Parsed with :mod:`json`, no ``jams`` dependency.

Chord and key vocabularies live in :mod:`mir_jax.data.vocab` and are
re-exported here.
"""

from __future__ import annotations

import csv
import io
import json
import os
import re
from collections.abc import Iterable, Sequence

import mir_eval.chord
import mir_eval.key
import numpy as np

from mir_jax.atomic import atomic_write
from mir_jax.data.vocab import (  # noqa: F401  (re-exported)
    IGNORE_INDEX,
    NUM_KEYS,
    PITCH_NAMES,
    VOCABULARIES,
    VocabularyError,
    chord_vocabulary,
    index_to_key,
    index_to_label,
    key_to_index,
    label_to_index,
    num_classes,
)


class AnnotationError(ValueError):
    """A malformed annotation file; the message starts with ``file:line:``."""

    def __init__(self, path, message: str, line: int | None = None):
        where = f"{os.fspath(path)}:{line}" if line is not None else os.fspath(path)
        super().__init__(f"{where}: {message}")
        self.path = os.fspath(path)
        self.line = line


# ---------------------------------------------------------------- helpers


def atomic_write_text(path, text: str) -> None:
    """Write ``text`` to ``path`` via a temp file in the same folder + ``os.replace``.

    A crash mid-write leaves either the old file or none, never half a file.
    Parent folders are created.
    """
    atomic_write(path, text)


def _read_text(path) -> str:
    try:
        with open(path, encoding="utf-8-sig") as f:
            return f.read()
    except FileNotFoundError:
        raise AnnotationError(path, "file not found") from None
    except UnicodeDecodeError as exc:
        raise AnnotationError(path, f"not UTF-8 text ({exc})") from None


def _content_lines(path):
    """Yield ``(line_number, fields)`` for non-blank, non-comment lines."""
    for lineno, raw in enumerate(_read_text(path).splitlines(), start=1):
        # only whole-line comments: '#' also spells sharps in labels (C#:maj)
        line = raw.strip()
        if line and not line.startswith("#"):
            yield lineno, line.split()


def _float(path, lineno, text, what):
    try:
        value = float(text)
    except ValueError:
        raise AnnotationError(path, f"{what} {text!r} is not a number", lineno) from None
    if not np.isfinite(value):
        raise AnnotationError(path, f"{what} {text!r} is not finite", lineno)
    return value


def _fmt(t: float) -> str:
    return f"{float(t):.6f}"


def _times_to_text(times) -> str:
    times = np.asarray(times, dtype=np.float64).reshape(-1)
    return "".join(f"{_fmt(t)}\n" for t in times)


def _read_times(path, what: str) -> np.ndarray:
    times = []
    for lineno, fields in _content_lines(path):
        t = _float(path, lineno, fields[0], what)
        if t < 0:
            raise AnnotationError(path, f"negative {what} {t}", lineno)
        times.append(t)
    return np.sort(np.asarray(times, dtype=np.float64))


# ---------------------------------------------------------------- onsets, beats


def read_onsets(path) -> np.ndarray:
    """Onset times in seconds, sorted (``float64``, shape ``(N,)``)."""
    return _read_times(path, "onset time")


def write_onsets(path, times) -> None:
    """Write one onset time per line (seconds, 6 decimals)."""
    atomic_write_text(path, _times_to_text(np.sort(np.asarray(times, dtype=np.float64))))


def read_beats(path) -> np.ndarray:
    """Beat times in seconds, sorted; a second column (beat position) is ignored."""
    return _read_times(path, "beat time")


def write_beats(path, times, positions=None) -> None:
    """Write beat times, optionally with a beat-position column."""
    times = np.asarray(times, dtype=np.float64).reshape(-1)
    if positions is None:
        atomic_write_text(path, _times_to_text(times))
        return
    positions = np.asarray(positions).reshape(-1)
    if len(positions) != len(times):
        raise ValueError(f"{len(times)} beat times but {len(positions)} positions")
    atomic_write_text(path, "".join(f"{_fmt(t)}\t{p}\n" for t, p in zip(times, positions)))


# ---------------------------------------------------------------- chords


def _validate_chord(path, lineno, label):
    if label == "X":
        return
    try:
        mir_eval.chord.encode(label)
    except mir_eval.chord.InvalidChordException as exc:
        raise AnnotationError(path, f"invalid chord label {label!r}: {exc}", lineno) from None


def read_chord_lab(path) -> tuple[np.ndarray, list[str]]:
    """Read a chord ``.lab``: ``(intervals (N, 2) float64 seconds, labels)``.

    Labels are validated with ``mir_eval.chord``; ``N`` and ``X`` are kept.
    """
    intervals, labels = [], []
    for lineno, fields in _content_lines(path):
        if len(fields) != 3:
            raise AnnotationError(
                path, f"expected 'start end label', got {len(fields)} fields", lineno
            )
        start = _float(path, lineno, fields[0], "start time")
        end = _float(path, lineno, fields[1], "end time")
        if start < 0 or end < start:
            raise AnnotationError(path, f"bad interval [{start}, {end}]", lineno)
        _validate_chord(path, lineno, fields[2])
        intervals.append((start, end))
        labels.append(fields[2])
    return np.asarray(intervals, dtype=np.float64).reshape(-1, 2), labels


def _check_label_text(label: str, what: str) -> str:
    label = str(label)
    if not label or any(c.isspace() for c in label):
        raise ValueError(f"{what} {label!r} must be non-empty and contain no whitespace")
    return label


def write_chord_lab(path, intervals, labels: Sequence[str]) -> None:
    """Write ``start<TAB>end<TAB>label`` lines (MIREX format)."""
    intervals = np.asarray(intervals, dtype=np.float64).reshape(-1, 2)
    if len(intervals) != len(labels):
        raise ValueError(f"{len(intervals)} intervals but {len(labels)} labels")
    lines = [
        f"{_fmt(s)}\t{_fmt(e)}\t{_check_label_text(lab, 'chord label')}\n"
        for (s, e), lab in zip(intervals, labels)
    ]
    atomic_write_text(path, "".join(lines))


def read_chord_sequence(path) -> list[tuple[str, float, float]]:
    """Read ``label<TAB>duration_seconds<TAB>duration_beats`` lines."""
    seq = []
    for lineno, fields in _content_lines(path):
        if len(fields) != 3:
            raise AnnotationError(
                path,
                f"expected 'label duration_seconds duration_beats', got {len(fields)} fields",
                lineno,
            )
        label = fields[0]
        _validate_chord(path, lineno, label)
        seconds = _float(path, lineno, fields[1], "duration_seconds")
        beats = _float(path, lineno, fields[2], "duration_beats")
        if seconds < 0 or beats < 0:
            raise AnnotationError(path, "negative duration", lineno)
        seq.append((label, seconds, beats))
    return seq


def write_chord_sequence(path, seq: Iterable[tuple[str, float, float]]) -> None:
    """Write one ``label<TAB>duration_seconds<TAB>duration_beats`` line per chord."""
    lines = []
    for label, seconds, beats in seq:
        lines.append(
            f"{_check_label_text(label, 'chord label')}\t{_fmt(seconds)}\t{float(beats):g}\n"
        )
    atomic_write_text(path, "".join(lines))


# ---------------------------------------------------------------- keys

_MODE_ALIASES = {
    "major": "major", "maj": "major", "ionian": "major",
    "minor": "minor", "min": "minor", "aeolian": "minor",
}
_OTHER_MODES = {"dorian", "phrygian", "lydian", "mixolydian", "locrian", "modal", "other"}
_TONIC_RE = re.compile(r"^([A-Ga-g])([#b]*)$")


def normalize_key(text: str) -> str:
    """Normalise a key string to mir_eval form.

    Accepts ``'Bb major'``, ``'bb Major'``, ``'C:minor'``, ``'E'`` (no mode means
    major, as in Isophonics), ``'F#:dorian'`` (church modes other than
    ionian/aeolian become mode ``other``), ``'X'``/``'N'`` (-> ``'X'``).
    Enharmonic spellings that mir_eval lacks (``Cb``, ``E#``) are respelled.
    Raises ``ValueError`` otherwise.
    """
    parts = text.replace(":", " ").split()
    if len(parts) == 1 and parts[0].upper() in ("X", "N"):
        return "X"
    if len(parts) not in (1, 2):
        raise ValueError(f"key {text!r} is not 'tonic mode'")
    m = _TONIC_RE.match(parts[0])
    if not m:
        raise ValueError(f"key {text!r}: invalid tonic {parts[0]!r}")
    tonic = m.group(1).upper() + m.group(2)
    mode_text = parts[1].lower() if len(parts) == 2 else "major"
    if mode_text in _MODE_ALIASES:
        mode = _MODE_ALIASES[mode_text]
    elif mode_text in _OTHER_MODES:
        mode = "other"
    else:
        raise ValueError(f"key {text!r}: unknown mode {parts[1]!r}")
    if tonic.lower() not in mir_eval.key.KEY_TO_SEMITONE:
        tonic = PITCH_NAMES[mir_eval.chord.pitch_class_to_semitone(tonic) % 12]
    return f"{tonic} {mode}"


def read_key_lab(path) -> tuple[np.ndarray, list[str]]:
    """Read an Isophonics key ``.lab``: ``(intervals, keys)``; ``Silence`` -> ``'X'``."""
    intervals, keys = [], []
    for lineno, fields in _content_lines(path):
        if len(fields) < 3:
            raise AnnotationError(path, "expected 'start end Key tonic[:mode]'", lineno)
        start = _float(path, lineno, fields[0], "start time")
        end = _float(path, lineno, fields[1], "end time")
        if start < 0 or end < start:
            raise AnnotationError(path, f"bad interval [{start}, {end}]", lineno)
        kind = fields[2].lower()
        if kind == "silence" and len(fields) == 3:
            key = "X"
        elif kind == "key" and len(fields) == 4:
            try:
                key = normalize_key(fields[3])
            except ValueError as exc:
                raise AnnotationError(path, str(exc), lineno) from None
        else:
            raise AnnotationError(
                path, f"expected 'Key tonic[:mode]' or 'Silence', got {' '.join(fields[2:])!r}",
                lineno,
            )
        intervals.append((start, end))
        keys.append(key)
    return np.asarray(intervals, dtype=np.float64).reshape(-1, 2), keys


def read_key(path) -> str:
    """The key of a track in mir_eval form (``'F# minor'``).

    A one-line GiantSteps file gives that key. An Isophonics key ``.lab`` gives
    the key covering the most time (``'X'`` when only silence is annotated).
    """
    entries = list(_content_lines(path))
    if not entries:
        raise AnnotationError(path, "empty key file")
    if len(entries) == 1 and len(entries[0][1]) <= 2:
        lineno, fields = entries[0]
        try:
            return normalize_key(" ".join(fields))
        except ValueError as exc:
            raise AnnotationError(path, str(exc), lineno) from None
    intervals, keys = read_key_lab(path)
    totals: dict[str, float] = {}
    for (s, e), k in zip(intervals, keys):
        if k != "X":
            totals[k] = totals.get(k, 0.0) + (e - s)
    if not totals:
        return "X"
    # max over insertion order: ties go to the key annotated first
    return max(totals, key=totals.get)


def write_key(path, key: str) -> None:
    """Write a one-line key file (``'Bb major'``), normalised to mir_eval form."""
    atomic_write_text(path, normalize_key(key) + "\n")


def write_key_lab(path, intervals, keys: Sequence[str]) -> None:
    """Write an Isophonics key ``.lab`` (``start end Key E:minor`` / ``Silence``)."""
    intervals = np.asarray(intervals, dtype=np.float64).reshape(-1, 2)
    if len(intervals) != len(keys):
        raise ValueError(f"{len(intervals)} intervals but {len(keys)} keys")
    lines = []
    for (s, e), k in zip(intervals, keys):
        k = normalize_key(k)
        text = "Silence" if k == "X" else "Key\t" + k.replace(" ", ":")
        lines.append(f"{_fmt(s)}\t{_fmt(e)}\t{text}\n")
    atomic_write_text(path, "".join(lines))


# ---------------------------------------------------------------- tags


def _binary_matrix(path, rows, linenos, first_col: int = 2) -> np.ndarray:
    """0/1 strings -> int8 matrix; a bad value names its line and 1-based column."""
    if not rows:
        return np.zeros((0, 0), dtype=np.int8)
    values = np.char.strip(np.asarray(rows, dtype=str))
    bad = ~np.isin(values, ("0", "1"))
    if bad.any():
        i, j = map(int, np.argwhere(bad)[0])
        raise AnnotationError(
            path, f"tag value {str(values[i, j])!r} in column {j + first_col} is not 0 or 1", linenos[i]
        )
    return (values == "1").astype(np.int8)


def read_tags_csv(path) -> tuple[list[str], list[str], np.ndarray]:
    """Read ``track,<tag1>,...`` CSV: ``(track_ids, tag_names, (N, K) int8 matrix)``."""
    rows = list(csv.reader(io.StringIO(_read_text(path))))
    rows = [r for r in rows if any(c.strip() for c in r)]
    if not rows:
        raise AnnotationError(path, "empty tags file", 1)
    header = rows[0]
    if header[0].strip() != "track":
        raise AnnotationError(path, f"header must start with 'track', got {header[0]!r}", 1)
    tag_names = [h.strip() for h in header[1:]]
    if len(set(tag_names)) != len(tag_names):
        raise AnnotationError(path, "duplicate tag names in header", 1)
    track_ids, values, linenos = [], [], []
    for lineno, row in enumerate(rows[1:], start=2):
        if len(row) != len(header):
            raise AnnotationError(
                path, f"expected {len(header)} columns, got {len(row)}", lineno
            )
        track_ids.append(row[0].strip())
        values.append(row[1:])
        linenos.append(lineno)
    matrix = _binary_matrix(path, values, linenos).reshape(len(track_ids), len(tag_names))
    return track_ids, tag_names, matrix


def write_tags_csv(path, track_ids: Sequence[str], tag_names: Sequence[str], matrix) -> None:
    """Write the tags CSV read by :func:`read_tags_csv`."""
    matrix = np.asarray(matrix)
    if matrix.shape != (len(track_ids), len(tag_names)):
        raise ValueError(
            f"matrix shape {matrix.shape} != ({len(track_ids)}, {len(tag_names)})"
        )
    buf = io.StringIO()
    writer = csv.writer(buf, lineterminator="\n")
    writer.writerow(["track", *tag_names])
    for tid, row in zip(track_ids, matrix):
        writer.writerow([tid, *(int(bool(v)) for v in row)])
    atomic_write_text(path, buf.getvalue())


def read_magnatagatune_csv(path) -> tuple[list[str], list[str], np.ndarray, list[str]]:
    """Read MagnaTagATune ``annotations_final.csv``.

    Returns ``(clip_ids, tag_names, (N, K) int8 matrix, mp3_paths)``. The file
    is tab-separated with a ``clip_id`` first column and ``mp3_path`` last;
    fields may be double-quoted.
    """
    rows = list(csv.reader(io.StringIO(_read_text(path)), delimiter="\t", quotechar='"'))
    numbered = [(i, r) for i, r in enumerate(rows, start=1) if any(c.strip() for c in r)]
    if not numbered:
        raise AnnotationError(path, "empty file", 1)
    header = [h.strip() for h in numbered[0][1]]
    if len(header) < 2 or header[0] != "clip_id" or header[-1] != "mp3_path":
        raise AnnotationError(
            path, "header must be 'clip_id<TAB>tags...<TAB>mp3_path'", numbered[0][0]
        )
    tag_names = header[1:-1]
    clip_ids, mp3_paths, values, linenos = [], [], [], []
    for lineno, row in numbered[1:]:
        if len(row) != len(header):
            raise AnnotationError(path, f"expected {len(header)} columns, got {len(row)}", lineno)
        clip_ids.append(row[0].strip())
        mp3_paths.append(row[-1].strip())
        values.append(row[1:-1])
        linenos.append(lineno)
    matrix = _binary_matrix(path, values, linenos).reshape(len(clip_ids), len(tag_names))
    return clip_ids, tag_names, matrix, mp3_paths


def write_magnatagatune_csv(path, clip_ids, tag_names, matrix, mp3_paths) -> None:
    """Write the MagnaTagATune format (all fields quoted, tab-separated)."""
    matrix = np.asarray(matrix)
    if matrix.shape != (len(clip_ids), len(tag_names)) or len(mp3_paths) != len(clip_ids):
        raise ValueError("clip_ids, tag_names, matrix and mp3_paths disagree in size")
    buf = io.StringIO()
    writer = csv.writer(buf, delimiter="\t", quoting=csv.QUOTE_ALL, lineterminator="\n")
    writer.writerow(["clip_id", *tag_names, "mp3_path"])
    for cid, row, mp3 in zip(clip_ids, matrix, mp3_paths):
        writer.writerow([cid, *(int(bool(v)) for v in row), mp3])
    atomic_write_text(path, buf.getvalue())


# ---------------------------------------------------------------- JAMS

CHORD_NAMESPACES = ("chord", "chord_harte")


def load_jams(path) -> dict:
    """The parsed JSON of a JAMS file; invalid JSON names the file and line."""
    try:
        doc = json.loads(_read_text(path))
    except json.JSONDecodeError as exc:
        raise AnnotationError(path, f"invalid JSON: {exc.msg}", exc.lineno) from None
    if not isinstance(doc, dict) or not isinstance(doc.get("annotations", []), list):
        raise AnnotationError(path, "not a JAMS document (no 'annotations' list)")
    return doc


def _observations(path, ann: dict, index: int) -> list[tuple[float, float, object]]:
    """``(time, duration, value)`` per observation, sparse or dense form."""
    data = ann.get("data", [])
    where = f"annotations[{index}] ({ann.get('namespace')})"
    if isinstance(data, dict):
        try:
            times, durs, values = data["time"], data["duration"], data["value"]
        except KeyError as exc:
            raise AnnotationError(path, f"{where}: dense data lacks {exc}") from None
        if not len(times) == len(durs) == len(values):
            raise AnnotationError(path, f"{where}: dense columns differ in length")
        records = [{"time": t, "duration": d, "value": v} for t, d, v in zip(times, durs, values)]
    elif isinstance(data, list):
        records = data
    else:
        raise AnnotationError(path, f"{where}: 'data' must be a list or a dict")
    out = []
    for j, rec in enumerate(records):
        try:
            t, d = float(rec["time"]), float(rec.get("duration", 0.0) or 0.0)
            v = rec.get("value")
        except (KeyError, TypeError, ValueError, AttributeError):
            raise AnnotationError(path, f"{where}: observation {j} malformed: {rec!r}") from None
        if not (np.isfinite(t) and np.isfinite(d)) or t < 0 or d < 0:
            raise AnnotationError(path, f"{where}: observation {j} has bad time/duration")
        out.append((t, d, v))
    out.sort(key=lambda o: (o[0], o[1]))
    return out


def _first_annotation(path, doc, namespaces, required):
    for i, ann in enumerate(doc.get("annotations", [])):
        ns = ann.get("namespace", "") if isinstance(ann, dict) else ""
        if any(ns == n or (n.endswith("*") and ns.startswith(n[:-1])) for n in namespaces):
            return i, ann
    if required:
        raise AnnotationError(path, f"no annotation with namespace in {list(namespaces)}")
    return None, None


def jams_duration(path) -> float | None:
    """``file_metadata.duration`` of a JAMS file, or ``None`` when absent."""
    dur = load_jams(path).get("file_metadata", {}).get("duration")
    return None if dur is None else float(dur)


def read_jams_chords(path) -> tuple[np.ndarray, list[str]]:
    """Chord intervals and labels from the first ``chord``/``chord_harte`` annotation."""
    doc = load_jams(path)
    i, ann = _first_annotation(path, doc, CHORD_NAMESPACES, True)
    obs = _observations(path, ann, i)
    labels = []
    for j, (_, _, v) in enumerate(obs):
        if not isinstance(v, str):
            raise AnnotationError(path, f"annotations[{i}]: chord value {v!r} is not a string")
        try:
            if v != "X":
                mir_eval.chord.encode(v)
        except mir_eval.chord.InvalidChordException as exc:
            raise AnnotationError(
                path, f"annotations[{i}] observation {j}: invalid chord {v!r}: {exc}"
            ) from None
        labels.append(v)
    intervals = np.asarray([(t, t + d) for t, d, _ in obs], dtype=np.float64).reshape(-1, 2)
    return intervals, labels


def read_jams_key(path) -> str:
    """The key (mir_eval form) of the first ``key_mode`` annotation.

    With several observations, the one covering the most time wins.
    """
    doc = load_jams(path)
    i, ann = _first_annotation(path, doc, ("key_mode",), True)
    totals: dict[str, float] = {}
    for j, (_, d, v) in enumerate(_observations(path, ann, i)):
        try:
            k = normalize_key(str(v))
        except ValueError as exc:
            raise AnnotationError(path, f"annotations[{i}] observation {j}: {exc}") from None
        totals[k] = totals.get(k, 0.0) + d
    if not totals:
        raise AnnotationError(path, f"annotations[{i}]: key_mode annotation is empty")
    known = {k: d for k, d in totals.items() if k != "X"} or totals
    return max(known, key=known.get)


def read_jams_onsets(path) -> np.ndarray:
    """Sorted onset times from the first ``onset`` annotation."""
    doc = load_jams(path)
    i, ann = _first_annotation(path, doc, ("onset",), True)
    return np.asarray([t for t, _, _ in _observations(path, ann, i)], dtype=np.float64)


def read_jams_tags(path) -> list[str]:
    """Tag values (deduplicated, first-seen order) of all ``tag_*`` annotations."""
    doc = load_jams(path)
    tags: list[str] = []
    for i, ann in enumerate(doc.get("annotations", [])):
        if isinstance(ann, dict) and str(ann.get("namespace", "")).startswith("tag_"):
            for _, _, v in _observations(path, ann, i):
                if str(v) not in tags:
                    tags.append(str(v))
    return tags


def write_jams(
    path,
    *,
    duration: float,
    chords: tuple | None = None,
    key: str | None = None,
    onsets=None,
    tags: Sequence[str] | None = None,
    title: str = "",
) -> None:
    """Write a minimal JAMS file (sparse observations) readable by the readers above.

    ``chords`` is ``(intervals, labels)``; ``key`` is a mir_eval key string and
    is stored as JAMS ``key_mode`` (``'C:major'``) over the whole duration.
    """

    def ann(namespace, data):
        return {
            "namespace": namespace,
            "data": data,
            "annotation_metadata": {"data_source": "mir_jax"},
            "sandbox": {},
            "time": 0,
            "duration": float(duration),
        }

    def obs(t, d, v):
        return {"time": float(t), "duration": float(d), "value": v, "confidence": None}

    annotations = []
    if chords is not None:
        intervals, labels = chords
        intervals = np.asarray(intervals, dtype=np.float64).reshape(-1, 2)
        annotations.append(
            ann("chord", [obs(s, e - s, str(l)) for (s, e), l in zip(intervals, labels)])
        )
    if key is not None:
        k = normalize_key(key)
        value = "N" if k == "X" else k.replace(" ", ":")
        annotations.append(ann("key_mode", [obs(0.0, duration, value)]))
    if onsets is not None:
        annotations.append(
            ann("onset", [obs(t, 0.0, None) for t in np.sort(np.asarray(onsets, float))])
        )
    if tags is not None:
        annotations.append(ann("tag_open", [obs(0.0, duration, str(t)) for t in tags]))
    doc = {
        "annotations": annotations,
        "file_metadata": {"title": title, "duration": float(duration), "identifiers": {}},
        "sandbox": {},
    }
    atomic_write_text(path, json.dumps(doc, indent=1) + "\n")
