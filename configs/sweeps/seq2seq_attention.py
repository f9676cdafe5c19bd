r"""Ablation 4: attention in chord-sequence transcription, against sequence length.

    python experiments/sweep.py --sweep=configs/sweeps/seq2seq_attention.py:small \
        --root=workdirs/sweeps/seq2seq_attention --seeds=2 --parallel=2

No attention (the encoder summary is the only context) vs additive vs dot vs
general scores on clips of 10 and 20 seconds (longer clips: longer chord
sequences, where a fixed summary should fall behind attention; the clip length
and the token budget change together). Every run is scored greedily and with
beam 4 (``decode.compare_beam_sizes``: columns ``beam4_*``), so greedy vs beam
compares the same parameters instead of two trainings.
"""

from mir_jax.sweeps import product, sweep_config, zip_


def get_config(arg=None):
  """The chord seq2seq experiment; ``arg`` ('tiny' or '') is passed on."""
  return sweep_config('configs/chord_seq2seq.py', arg or '', metric='majmin')


def get_sweep():
  return product(
      {'model.attention': ['none', 'additive', 'dot', 'general']},
      zip_({'data.synth.duration': [10.0, 20.0], 'task.max_tokens': [32, 64]}),
  )
