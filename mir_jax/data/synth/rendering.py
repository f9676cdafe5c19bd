"""Turns a composed piece into audio: a SoundFont renderer and the numpy fallback.

The SoundFont renderer is pip-only: ``midirenderer`` renders MIDI bytes with a
SoundFont to 48 kHz stereo WAV bytes (no system libraries). By default it uses the
General MIDI SoundFont ``TimGM6mb.sf2`` shipped in the ``pretty_midi`` wheel; any other
``.sf2`` works (Debian's ``fluid-soundfont-gm`` installs
``/usr/share/sounds/sf2/FluidR3_GM.sf2``).
"""

from __future__ import annotations

import copy
import functools
import io
import os

import numpy as np
import pretty_midi
import soundfile as sf
import soxr

from mir_jax.data.synth import effects, numpy_synth

RENDERERS = ('soundfont', 'numpy')
SOUNDFONT_RATE = 48000  # midirenderer's fixed output rate
# midirenderer stops at the MIDI file's last event; a no-op controller event this
# long after the clip end keeps release tails from being cut.
_PAD_SECONDS = 0.5
_PAD_CONTROLLER = 110  # undefined in General MIDI, so synthesizers ignore it


def default_soundfont() -> str:
    """Path of the General MIDI SoundFont that ships inside ``pretty_midi``."""
    return os.path.join(os.path.dirname(pretty_midi.__file__), 'TimGM6mb.sf2')


@functools.lru_cache(maxsize=4)
def _soundfont_bytes(path: str) -> bytes:
    try:
        with open(path, 'rb') as f:
            data = f.read()
    except OSError as e:
        raise ValueError(f'cannot read SoundFont {path}: {e}') from e
    if data[:4] != b'RIFF' or data[8:12] != b'sfbk':
        raise ValueError(f'{path} is not a SoundFont 2 file (no RIFF sfbk header)')
    return data


def render_soundfont(midi: pretty_midi.PrettyMIDI, sample_rate: int, length: int,
                     soundfont: str | None = None) -> np.ndarray:
    """Renders ``midi`` with a SoundFont to mono float32 of ``length`` samples."""
    import midirenderer

    path = os.fspath(soundfont) if soundfont else default_soundfont()
    sf_bytes = _soundfont_bytes(path)
    padded = copy.deepcopy(midi)
    if not padded.instruments:
        return np.zeros(length, dtype=np.float32)
    end = length / sample_rate + _PAD_SECONDS
    padded.instruments[0].control_changes.append(
        pretty_midi.ControlChange(number=_PAD_CONTROLLER, value=0, time=end))
    buf = io.BytesIO()
    padded.write(buf)
    try:
        wav = midirenderer.render_wave_from(sf_bytes, buf.getvalue())
    except (ValueError, RuntimeError) as e:
        raise ValueError(f'midirenderer failed with SoundFont {path}: {e}') from e
    y, sr = sf.read(io.BytesIO(wav), dtype='float32', always_2d=True)
    y = y.mean(axis=1)
    if sr != sample_rate:
        y = soxr.resample(y, sr, sample_rate, quality='HQ')
    if y.size < length:
        y = np.pad(y, (0, length - y.size))
    return np.ascontiguousarray(y[:length], dtype=np.float32)


def render(piece, sample_rate: int = 22050, renderer: str = 'soundfont',
           soundfont: str | None = None, apply_effects: bool = True) -> np.ndarray:
    """Renders a :class:`composer.Piece` to mono float32 audio of ``piece.duration`` s.

    Args:
      piece: the composed piece.
      sample_rate: output rate in Hz.
      renderer: 'soundfont' (midirenderer) or 'numpy' (fast additive fallback).
      soundfont: a ``.sf2`` path for the SoundFont renderer; ``None`` uses TimGM6mb.
      apply_effects: add room reverb, noise and a random level (seeded by the piece,
        so the same piece always renders to the same samples). Without effects the
        peak is normalised to -1 dBFS.
    """
    if renderer not in RENDERERS:
        raise ValueError(f'renderer must be one of {RENDERERS}, got {renderer!r}')
    length = int(round(piece.duration * sample_rate))
    if renderer == 'soundfont':
        y = render_soundfont(piece.midi, sample_rate, length, soundfont)
    else:
        y = numpy_synth.synthesize(piece.midi, sample_rate, length, seed=piece.render_seed)
    if apply_effects:
        return effects.apply_effects(y, sample_rate, np.random.default_rng(piece.render_seed))
    return effects.normalize_peak(y, -1.0)
