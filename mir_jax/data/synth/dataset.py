"""Writes a synthetic dataset folder in the field's standard annotation formats.

Layout of ``DIR`` (read back by ``mir_jax.data.datasets.load_dataset_folder``)::

  audio/<track>.wav              mono, 16-bit PCM
  onsets/<track>.onsets          one onset time in seconds per line
  chords/<track>.lab             start end Harte-label (full labels, readers reduce)
  keys/<track>.key               e.g. 'F# minor'
  chord_sequences/<track>.txt    label<TAB>seconds<TAB>beats
  tags.csv                       track,<tag1>,... 0/1
  manifest.json                  generator settings, label conventions, track ids

Track ``i`` of seed ``s`` is ``synth_s<s>_<i:05d>`` and is composed from
``np.random.default_rng([s, i])``, so tracks do not depend on worker scheduling and
different seeds give disjoint track ids (and different music).

Crash safety: the dataset is written into ``DIR.tmp-<pid>`` and renamed to ``DIR``
at the end, so a folder named ``DIR`` is always complete. A second call with the same
settings finds ``DIR/manifest.json`` and returns it without writing anything.
"""

from __future__ import annotations

import json
import multiprocessing
import os
import shutil
import sys

import numpy as np

from mir_jax.data.synth import composer, labels as labels_lib, rendering as render_lib

GENERATOR = 'mir_jax.data.synth'
FORMAT_VERSION = 1


def track_id(seed: int, index: int) -> str:
    return f'synth_s{seed}_{index:05d}'


def track_duration(settings: dict, index: int) -> float:
    """Seconds of track ``index``: ``duration``, or drawn in [duration, max_duration].

    The draw has its own generator (not the composer's), to 0.1 s, so it is the
    same for a track whatever the other tracks or the worker count.
    """
    low, high = settings['duration'], settings.get('max_duration')
    if high is None:
        return low
    draw = np.random.default_rng([settings['seed'], index, 1]).uniform(low, high)
    return float(min(max(round(draw, 1), low), high))


def _settings(num, seed, duration, soundfont, sample_rate, renderer, effects,
              max_duration=None) -> dict:
    sf_info = None
    if renderer == 'soundfont':
        path = os.path.abspath(soundfont or render_lib.default_soundfont())
        if not os.path.isfile(path):
            raise ValueError(f'SoundFont not found: {path}')
        sf_info = {'path': path, 'bytes': os.path.getsize(path)}
    settings = {
        'generator': GENERATOR,
        'format_version': FORMAT_VERSION,
        'num': int(num),
        'seed': int(seed),
        'duration': float(duration),
        'sample_rate': int(sample_rate),
        'renderer': renderer,
        'soundfont': sf_info,
        'effects': bool(effects),
    }
    if max_duration is not None:  # absent otherwise: fixed-length sets keep their settings
        settings['max_duration'] = float(max_duration)
    return settings


def _conventions() -> dict:
    return {
        'chords': 'full Harte labels with sevenths and inversions as a bass degree '
                  '(C:maj/3); N for the silent lead-in and tail; readers reduce them',
        'majmin_reduction': 'sevenths to their triad, dim/hdim7/dim7 to min, bass dropped',
        'onsets': f'note starts of all instruments incl. drums, merged within '
                  f'{labels_lib.ONSET_MERGE_SECONDS * 1000:.0f} ms of a group\'s first onset',
        'chord_sequences': 'chord segments without the N lead-in and tail',
        'key': 'mir_eval form, e.g. "F# minor"',
        'tempo_classes': {name: [lo, hi] for name, lo, hi in labels_lib.TEMPO_CLASSES},
        'density_threshold_onsets_per_second': labels_lib.DENSITY_THRESHOLD,
    }


def _read_manifest(path) -> dict | None:
    try:
        with open(path, encoding='utf-8') as f:
            return json.load(f)
    except FileNotFoundError:
        return None
    except (OSError, json.JSONDecodeError) as e:
        raise ValueError(f'{path}: unreadable manifest: {e}') from e


def _comparable(settings: dict) -> dict:
    """Settings as compared with a folder's manifest: the SoundFont by file name and size.

    Its absolute path lies inside the environment that rendered the set, so the
    same SoundFont installed in another virtualenv must not make the cached set
    look foreign.
    """
    sf = settings.get('soundfont')
    if not sf:
        return settings
    return {**settings, 'soundfont': {'file': os.path.basename(sf['path']), 'bytes': sf['bytes']}}


def _existing(out_dir: str, settings: dict) -> dict | None:
    """The existing manifest if ``out_dir`` holds this dataset; an error if another."""
    if not os.path.exists(out_dir):
        return None
    manifest_path = os.path.join(out_dir, 'manifest.json')
    manifest = _read_manifest(manifest_path)
    if manifest is None:
        if os.path.isdir(out_dir) and not os.listdir(out_dir):
            return None
        raise ValueError(f'{out_dir} exists but has no manifest.json; refusing to overwrite it')
    old, new = _comparable(manifest.get('settings') or {}), _comparable(settings)
    if old != new:
        diff = sorted(k for k in set(old) | set(new) if old.get(k) != new.get(k))
        raise ValueError(f'{manifest_path} was written with other settings (differ in '
                         f'{", ".join(diff)}); choose another folder or delete it')
    return manifest


def _write_track(job) -> tuple[str, list[int]]:
    """Composes, renders and writes one track into ``tmp_dir`` (runs in a worker)."""
    from mir_jax.audio.io import save_wav
    from mir_jax.data import annotations as ann

    tmp_dir, settings, index = job
    seed = settings['seed']
    tid = track_id(seed, index)
    piece = composer.compose(np.random.default_rng([seed, index]),
                             track_duration(settings, index))
    sf_path = settings['soundfont']['path'] if settings['soundfont'] else None
    y = render_lib.render(piece, settings['sample_rate'], renderer=settings['renderer'],
                          soundfont=sf_path, apply_effects=settings['effects'])
    lab = piece.labels
    save_wav(os.path.join(tmp_dir, 'audio', f'{tid}.wav'), y, settings['sample_rate'])
    ann.write_onsets(os.path.join(tmp_dir, 'onsets', f'{tid}.onsets'), lab.onsets)
    ann.write_chord_lab(os.path.join(tmp_dir, 'chords', f'{tid}.lab'), lab.chord_intervals,
                        lab.chord_labels)
    ann.write_key(os.path.join(tmp_dir, 'keys', f'{tid}.key'), lab.key)
    ann.write_chord_sequence(os.path.join(tmp_dir, 'chord_sequences', f'{tid}.txt'),
                             lab.chord_sequence)
    return tid, lab.tag_vector().tolist()


def _pid_alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def _remove_stale_tmp(out_dir: str) -> None:
    """Removes ``DIR.tmp-<pid>`` folders left by crashed writers (dead pids only)."""
    parent, base = os.path.split(out_dir)
    for name in os.listdir(parent or '.'):
        if name.startswith(base + '.tmp-'):
            pid = name[len(base) + 5:]
            if pid.isdigit() and not _pid_alive(int(pid)):
                shutil.rmtree(os.path.join(parent, name), ignore_errors=True)


def write_dataset(out_dir, num: int, seed: int, duration: float, soundfont=None,
                  sample_rate: int = 22050, renderer: str = 'soundfont',
                  workers: int | None = None, effects: bool = True,
                  progress: bool = True, max_duration: float | None = None) -> dict:
    """Composes and renders ``num`` tracks into ``out_dir``; returns the manifest.

    Args:
      out_dir: dataset root; created (atomically, by renaming a temp folder).
      num: number of tracks.
      seed: dataset seed; track ids are ``synth_s<seed>_<i:05d>``.
      duration: seconds per track (>= 2); the shortest with ``max_duration``.
      soundfont: a ``.sf2`` path; ``None`` uses the TimGM6mb SoundFont of pretty_midi.
      sample_rate: audio rate in Hz.
      renderer: 'soundfont' or 'numpy' (fast additive fallback).
      workers: processes; ``None`` uses ``os.cpu_count()``. 1 works in-process.
      effects: add reverb, noise and level variation.
      progress: show a tqdm progress bar on stderr.
      max_duration: if given, each track lasts a length drawn uniformly (per track,
        to 0.1 s) in ``[duration, max_duration]``, listed in the manifest's
        ``durations``: a sequence model trained on one length learns to stop there.

    Returns:
      The manifest dict (also in ``out_dir/manifest.json``). If ``out_dir`` already
      holds a dataset with the same settings it is returned untouched; other settings
      raise ``ValueError`` naming the differing keys.
    """
    if renderer not in render_lib.RENDERERS:
        raise ValueError(f'renderer must be one of {render_lib.RENDERERS}, got {renderer!r}')
    if int(num) < 1:
        raise ValueError(f'num must be >= 1, got {num}')
    if not float(duration) >= composer.MIN_DURATION_SECONDS:
        raise ValueError(f'duration must be >= {composer.MIN_DURATION_SECONDS} s, '
                         f'got {duration}')
    if max_duration is not None and not float(max_duration) >= float(duration):
        raise ValueError(f'max_duration must be >= duration ({duration}), got {max_duration}')
    out_dir = os.path.abspath(os.fspath(out_dir))
    settings = _settings(num, seed, duration, soundfont, sample_rate, renderer, effects,
                         max_duration)
    manifest = _existing(out_dir, settings)
    if manifest is not None:
        return manifest

    os.makedirs(os.path.dirname(out_dir), exist_ok=True)
    _remove_stale_tmp(out_dir)
    tmp_dir = f'{out_dir}.tmp-{os.getpid()}'
    shutil.rmtree(tmp_dir, ignore_errors=True)
    for sub in ('audio', 'onsets', 'chords', 'keys', 'chord_sequences'):
        os.makedirs(os.path.join(tmp_dir, sub))
    try:
        manifest = _write_all(tmp_dir, settings, num, workers, progress)
        if os.path.isdir(out_dir) and not os.listdir(out_dir):
            os.rmdir(out_dir)
        try:
            os.rename(tmp_dir, out_dir)
        except OSError:
            # Another process finished the same dataset first: use theirs.
            existing = _existing(out_dir, settings)
            if existing is None:
                raise
            shutil.rmtree(tmp_dir, ignore_errors=True)
            return existing
    except BaseException:
        shutil.rmtree(tmp_dir, ignore_errors=True)
        raise
    return manifest


def _write_all(tmp_dir, settings, num, workers, progress) -> dict:
    from tqdm import tqdm

    from mir_jax.data import annotations as ann

    workers = min(int(workers or os.cpu_count() or 1), num)
    jobs = [(tmp_dir, settings, i) for i in range(num)]
    bar = tqdm(total=num, desc=f'synth {os.path.basename(tmp_dir.rsplit(".tmp-", 1)[0])}',
               unit='track', file=sys.stderr, disable=not progress)
    results = []
    if workers <= 1:
        for job in jobs:
            results.append(_write_track(job))
            bar.update()
    else:
        # spawn: safe when the caller has already started JAX's threads.
        with multiprocessing.get_context('spawn').Pool(workers) as pool:
            for res in pool.imap_unordered(_write_track, jobs):
                results.append(res)
                bar.update()
    bar.close()
    results.sort()
    ids = [r[0] for r in results]
    matrix = np.array([r[1] for r in results], dtype=np.int8)
    ann.write_tags_csv(os.path.join(tmp_dir, 'tags.csv'), ids, list(labels_lib.TAG_NAMES),
                       matrix)
    # No timings in the manifest: the same settings must give identical files.
    manifest = {
        'settings': settings,
        'conventions': _conventions(),
        'tag_names': list(labels_lib.TAG_NAMES),
        'tracks': ids,
    }
    if 'max_duration' in settings:
        manifest['durations'] = [track_duration(settings, i) for i in range(num)]
    ann.atomic_write_text(os.path.join(tmp_dir, 'manifest.json'),
                          json.dumps(manifest, indent=2) + '\n')
    return manifest
