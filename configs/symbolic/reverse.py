r"""The symbolic sanity task of the seq2seq decoder: reverse random token sequences.

    python experiments/symbolic.py --config=configs/symbolic/reverse.py

Trains the seq2seq model once per entry of ``compare_attention`` on sequences
of ``min_len``..``max_len`` symbols (16-20: too many for the encoder summary
alone) and prints held-out sequence accuracy (exact match up to ``</s>``),
greedy and beam. No audio: it checks that the decoder learns, independently of
the front end, and that attention is what makes long sequences possible.
``configs/symbolic/reverse.py:tiny`` is a seconds-long look.
"""

import ml_collections

from configs import base


def get_config(arg: str | None = None):
  """Symbolic reversal config; ``arg`` is '' or 'tiny'."""
  args = base.parse_arg(arg, tiny=False)
  c = ml_collections.ConfigDict()
  c.task = 'reverse'  # 'reverse' or 'sort'
  c.num_symbols = 10  # distinct symbols besides <pad>, <s>, </s>
  c.min_len = 16  # shortest source sequence
  c.max_len = 20  # longest source sequence
  c.compare_attention = ('additive', 'none')  # one training run per attention kind
  c.seed = 0  # parameters and training batches

  c.model = ml_collections.ConfigDict()  # mir_jax.models.seq2seq.Seq2Seq widths
  c.model.embed_dim = 16  # decoder token embedding width
  c.model.encoder_hidden = 32  # per direction, one bidirectional layer, no downsampling
  c.model.decoder_hidden = 64  # decoder LSTM units
  c.model.attention_dim = 32  # hidden width of the additive score
  c.model.output_hidden = 64  # feed-forward width over [hidden; context]

  c.train = ml_collections.ConfigDict()
  c.train.steps = 1500  # Adam updates per attention kind
  c.train.batch_size = 64  # sequences per update
  c.train.learning_rate = 3e-3  # Adam, gradients clipped to norm 1
  c.train.label_smoothing = 0.0  # of the token targets

  c.eval = ml_collections.ConfigDict()
  c.eval.num_examples = 256  # held-out sequences, drawn with eval.seed
  c.eval.seed = 99  # differs from seed: held-out sequences are new
  c.eval.beam_size = 4  # beam search is scored beside greedy

  if args.tiny:
    c.min_len, c.max_len = 2, 6
    c.num_symbols = 8
    c.train.steps = 200
    c.train.learning_rate = 5e-3
    c.eval.num_examples = 64
  return c
