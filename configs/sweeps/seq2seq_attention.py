r"""Ablation 4: attention in chord-sequence transcription, against sequence length.

    python experiments/sweep.py --sweep=configs/sweeps/seq2seq_attention.py \
        --root=workdirs/sweeps/seq2seq_attention --seeds=3

No attention (the encoder summary is the only context) vs additive vs dot vs
general scores, decoded greedily or with beam search, on clips of 10, 20 and 40
seconds (longer clips: longer chord sequences, where a fixed summary should
fall behind attention). The clip length and the token budget change together.
"""

from mir_jax.sweeps import product, sweep_config, zip_


def get_config(arg=None):
  """The chord seq2seq experiment; ``arg`` ('tiny' or '') is passed on."""
  return sweep_config('configs/chord_seq2seq.py', arg or '', metric='majmin')


def get_sweep():
  return product(
      {'model.attention': ['none', 'additive', 'dot', 'general']},
      zip_({'decode.method': ['greedy', 'beam'], 'decode.beam_size': [1, 4]}),
      zip_({'data.synth.duration': [10.0, 20.0, 40.0], 'task.max_tokens': [32, 64, 128]}),
  )
