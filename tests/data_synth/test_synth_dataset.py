"""Tests of the dataset writer and its command line."""

import json
import os

import numpy as np
import pytest
import soundfile as sf

from mir_jax.data import annotations as ann
from mir_jax.data.synth import __main__ as cli
from mir_jax.data.synth import composer, dataset, labels

SUBDIRS = {'audio': '.wav', 'onsets': '.onsets', 'chords': '.lab', 'keys': '.key',
           'chord_sequences': '.txt'}


def _write(out, seed=5, num=3, **kw):
    kw.setdefault('renderer', 'numpy')
    kw.setdefault('workers', 1)
    return dataset.write_dataset(out, num=num, seed=seed, duration=3.0, sample_rate=16000,
                                 progress=False, **kw)


def test_writes_every_file_and_labels_read_back(tmp_path):
    out = tmp_path / 'train'
    manifest = _write(out)
    ids = [f'synth_s5_{i:05d}' for i in range(3)]
    assert manifest['tracks'] == ids
    for folder, ext in SUBDIRS.items():
        assert sorted(os.listdir(out / folder)) == [t + ext for t in ids]
    for i, tid in enumerate(ids):
        lab = composer.compose(np.random.default_rng([5, i]), 3.0).labels
        y, sr = sf.read(out / 'audio' / f'{tid}.wav')
        assert sr == 16000 and y.shape == (48000,) and np.max(np.abs(y)) > 0.01
        np.testing.assert_allclose(ann.read_onsets(out / 'onsets' / f'{tid}.onsets'),
                                   lab.onsets, atol=1e-6)
        intervals, chord_labels = ann.read_chord_lab(out / 'chords' / f'{tid}.lab')
        np.testing.assert_allclose(intervals, lab.chord_intervals, atol=1e-6)
        assert chord_labels == lab.chord_labels
        assert ann.read_key(out / 'keys' / f'{tid}.key') == lab.key
        seq = ann.read_chord_sequence(out / 'chord_sequences' / f'{tid}.txt')
        assert [s[0] for s in seq] == [s[0] for s in lab.chord_sequence]
        np.testing.assert_allclose([s[1:] for s in seq], [s[1:] for s in lab.chord_sequence],
                                   atol=1e-5)
    track_ids, tag_names, matrix = ann.read_tags_csv(out / 'tags.csv')
    assert track_ids == ids and tag_names == list(labels.TAG_NAMES)
    assert matrix.shape == (3, len(labels.TAG_NAMES))
    assert np.all(matrix[:, tag_names.index('mode_major')] +
                  matrix[:, tag_names.index('mode_minor')] == 1)
    on_disk = json.loads((out / 'manifest.json').read_text())
    assert on_disk == manifest and on_disk['settings']['seed'] == 5
    assert not [p for p in os.listdir(tmp_path) if '.tmp-' in p]


def test_dataset_folder_loads_with_the_generic_reader(tmp_path):
    from mir_jax.data.datasets import load_dataset_folder

    _write(tmp_path / 'd', num=2)
    tracks, tag_names = load_dataset_folder(tmp_path / 'd')
    assert [t.track_id for t in tracks] == ['synth_s5_00000', 'synth_s5_00001']
    assert tag_names == list(labels.TAG_NAMES)
    assert all(t.key and t.chord_labels and t.onsets is not None for t in tracks)


def test_same_seed_same_files_second_call_is_a_noop_and_seeds_are_disjoint(tmp_path, tree_bytes):
    a, b = tmp_path / 'a', tmp_path / 'b'
    _write(a)
    _write(b)
    assert tree_bytes(a) == tree_bytes(b)
    stamp = os.stat(a / 'manifest.json').st_mtime_ns
    assert _write(a) == json.loads((a / 'manifest.json').read_text())
    assert os.stat(a / 'manifest.json').st_mtime_ns == stamp
    other = _write(tmp_path / 'c', seed=6)
    assert not set(other['tracks']) & set(json.loads((a / 'manifest.json').read_text())['tracks'])
    wav_a = (a / 'audio' / 'synth_s5_00000.wav').read_bytes()
    assert wav_a != (tmp_path / 'c' / 'audio' / 'synth_s6_00000.wav').read_bytes()


def test_other_settings_or_foreign_folder_are_refused(tmp_path):
    _write(tmp_path / 'a')
    with pytest.raises(ValueError, match='num'):
        _write(tmp_path / 'a', num=4)
    (tmp_path / 'mine').mkdir()
    (tmp_path / 'mine' / 'notes.txt').write_text('keep me')
    with pytest.raises(ValueError, match='no manifest'):
        _write(tmp_path / 'mine')
    assert (tmp_path / 'mine' / 'notes.txt').read_text() == 'keep me'
    with pytest.raises(ValueError, match='renderer'):
        _write(tmp_path / 'x', renderer='bogus')


def test_crash_leaves_no_complete_looking_folder(tmp_path, monkeypatch):
    def boom(job):
        if job[2] == 1:
            raise RuntimeError('renderer crashed')
        return real(job)

    real = dataset._write_track
    monkeypatch.setattr(dataset, '_write_track', boom)
    with pytest.raises(RuntimeError):
        _write(tmp_path / 'a')
    assert os.listdir(tmp_path) == []
    # A temp folder left by a dead process is cleaned up by the next writer.
    stale = tmp_path / 'a.tmp-999999999'
    stale.mkdir()
    monkeypatch.setattr(dataset, '_write_track', real)
    _write(tmp_path / 'a')
    assert sorted(os.listdir(tmp_path)) == ['a']


def test_worker_pool_gives_the_same_files(tmp_path, tree_bytes):
    _write(tmp_path / 'serial', num=4)
    _write(tmp_path / 'pool', num=4, workers=2)
    assert tree_bytes(tmp_path / 'serial') == tree_bytes(tmp_path / 'pool')


def test_command_line(tmp_path, capsys):
    out = tmp_path / 'cli'
    rc = cli.main(['--out', str(out), '--num', '2', '--seed', '9', '--duration', '2.5',
                   '--renderer', 'numpy', '--workers', '1', '--sample-rate', '8000'])
    assert rc == 0
    assert sorted(os.listdir(out / 'audio')) == ['synth_s9_00000.wav', 'synth_s9_00001.wav']
    assert sf.info(out / 'audio' / 'synth_s9_00000.wav').samplerate == 8000
    assert 'real time' in capsys.readouterr().err
    rc = cli.main(['--out', str(out), '--num', '3', '--seed', '9', '--duration', '2.5',
                   '--renderer', 'numpy', '--workers', '1'])
    assert rc == 2 and 'other settings' in capsys.readouterr().err


def test_mixed_lengths_are_drawn_per_track_and_labelled_to_the_end(tmp_path):
    manifest = _write(tmp_path / 'mixed', num=6, max_duration=6.0)
    durations = manifest['durations']
    assert len(durations) == 6 and len(set(durations)) > 1
    assert all(3.0 <= d <= 6.0 and round(d, 1) == d for d in durations)
    for tid, seconds in zip(manifest['tracks'], durations):
        info = sf.info(tmp_path / 'mixed' / 'audio' / f'{tid}.wav')
        assert info.frames == round(seconds * 16000)
        intervals, _ = ann.read_chord_lab(tmp_path / 'mixed' / 'chords' / f'{tid}.lab')
        assert intervals[-1, 1] == pytest.approx(seconds)
    # A track's length is its own: a larger set begins with the same lengths.
    assert _write(tmp_path / 'more', num=8, max_duration=6.0)['durations'][:6] == durations
    # Fixed-length sets keep their settings (cached folders stay valid).
    assert 'max_duration' not in _write(tmp_path / 'fixed')['settings']
    with pytest.raises(ValueError, match='max_duration must be >= duration'):
        _write(tmp_path / 'bad', max_duration=2.0)


def test_same_soundfont_from_another_environment_reuses_the_set(tmp_path):
    # A recreated virtualenv installs the same SoundFont under another path.
    import shutil
    from mir_jax.data.synth import rendering
    first, second = tmp_path / 'env1', tmp_path / 'env2'
    for env in (first, second):
        env.mkdir()
        shutil.copy(rendering.default_soundfont(), env / 'font.sf2')
    out = tmp_path / 'set'
    kw = dict(num=1, seed=3, duration=2.0, renderer='soundfont', workers=1, progress=False,
              sample_rate=16000)
    made = dataset.write_dataset(out, soundfont=str(first / 'font.sf2'), **kw)
    again = dataset.write_dataset(out, soundfont=str(second / 'font.sf2'), **kw)
    assert again == made
    other = tmp_path / 'env3'
    other.mkdir()
    (other / 'font.sf2').write_bytes((first / 'font.sf2').read_bytes()[:-4])  # another file
    with pytest.raises(ValueError, match='differ in soundfont'):
        dataset.write_dataset(out, soundfont=str(other / 'font.sf2'), **kw)
