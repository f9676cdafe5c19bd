"""Synthetic music with exact labels: a composer, renderers and a dataset writer.

``compose(rng, duration)`` writes a piece (MIDI plus labels), ``render(piece, ...)``
turns it into audio, and ``write_dataset(...)`` (or ``python -m mir_jax.data.synth``)
writes a dataset folder that the ordinary dataset readers load.
"""

from mir_jax.data.synth.composer import Piece, compose
from mir_jax.data.synth.dataset import track_id, write_dataset
from mir_jax.data.synth.labels import TAG_NAMES, Labels
from mir_jax.data.synth.rendering import default_soundfont, render

__all__ = ['Piece', 'Labels', 'TAG_NAMES', 'compose', 'render', 'default_soundfont',
           'write_dataset', 'track_id']
