r"""Chord recognition (majmin, 25 classes) with a CRNN on a log-CQT.

    python experiments/main.py --config=configs/chord_crnn.py --workdir=workdirs/chord_crnn

Renders a synthetic training set and a disjoint evaluation set (different
composer seeds; shared with ``key_cnn`` and ``tagging_crnn``) under
``config.data.root`` (default ``~/.cache/mir_jax/data``, rendered once),
trains, and evaluates with ``mir_eval.chord`` (root, majmin, mirex, sevenths,
weighted over the evaluation set). Then ``--mode=predict`` writes ``.lab`` files:

    python experiments/main.py --config=configs/chord_crnn.py --workdir=workdirs/chord_crnn \
        --mode=predict --input=song.wav --output=/tmp/chords

Arguments (``configs/chord_crnn.py:tiny``): ``tiny`` shrinks everything (6
short numpy-rendered tracks, a small model, 30 steps) for tests and quick
looks; ``small`` is the ablation size (same data and model, batch 8, 300 steps);
``vocab=sevenths`` switches to the 61-class vocabulary.
"""

from configs import base


def get_config(arg: str | None = None):
  """Chord CRNN config; ``arg`` is 'tiny', 'vocab=sevenths' or both (comma-separated)."""
  args = base.parse_arg(arg, tiny=False, small=False, vocab='majmin')
  c = base.get_config()

  c.task.name = 'chord'  # frame-wise chord classification
  c.task.vocab = args.vocab  # 'majmin' (25 classes) or 'sevenths' (61)
  c.task.decoder = 'viterbi'  # 'argmax' or 'viterbi' (self-transition smoothing)
  c.task.self_transition = 0.9  # Viterbi probability of keeping the chord between frames
  c.task.label_smoothing = 0.0  # cross-entropy label smoothing

  c.model.name = 'crnn'  # CNN over (time, freq) keeping the frame rate, then RecurrentStack
  c.model.conv_features = (16, 32)  # channels of each conv block
  c.model.kernel_size = (3, 3)  # (time, freq) kernel
  c.model.freq_pool = (2, 2)  # max pooling over frequency after each block
  c.model.norm = True  # layer norm over channels after each convolution
  c.model.input_projection = 128  # dense width between the CNN and the RNN; 0 = none
  c.model.cell = 'lstm'  # 'lstm', 'gru', 'rnn_tanh' or 'rnn_relu'
  c.model.hidden_size = 64  # units per direction
  c.model.num_layers = 1  # recurrent layers
  c.model.bidirectional = True  # False: the causal/online variant
  c.model.merge = 'concat'  # how directions are merged: 'concat' or 'sum'
  c.model.residual = False  # residual connections between recurrent layers
  c.model.dropout = 0.2  # dropout in the CNN, after the projection and between layers
  c.model.unroll = 1  # scan unroll factor

  # Log-CQT, 2 bins per semitone over 7 octaves from C1, about 10.8 frames per second.
  c.features.kind = 'cqt'
  c.features.hop_length = 2048  # 22050 / 2048 ≈ 10.8 fps (a power of 2, as the CQT octaves need)
  c.features.fmin = 32.703  # C1
  c.features.bins_per_octave = 24
  c.features.n_bins = 168

  c.data.synth.num_train = 1500  # shared with key_cnn and tagging_crnn (one rendering)
  c.data.synth.num_eval = 200
  c.data.crop_frames = 160  # ~15 s crops
  c.data.batch_size = 16
  c.data.pad_to_multiple = 64
  c.optimizer.learning_rate = 2e-3
  c.optimizer.warmup_steps = 100
  c.train.num_steps = 1500  # 2000 took 33.5 min on one shared core; majmin 0.936 already at 500
  c.train.eval_every = 500
  c.checkpoint.every = 500

  if args.small:  # ablation size: same data and model, half the batch, 300 steps
    c.data.batch_size = 8
    c.train.num_steps = 300
    c.train.eval_every = 0  # one evaluation, at the end
    c.checkpoint.every = 250
    c.eval.num_figures = 0
  if args.tiny:
    c.data.synth.num_train = 6
    c.data.synth.num_eval = 2
    c.data.synth.duration = 6.0
    c.data.synth.renderer = 'numpy'
    c.features.bins_per_octave = 12
    c.features.n_bins = 48
    c.features.fmin = 65.406  # C2
    c.model.conv_features = (4,)
    c.model.freq_pool = (2,)
    c.model.input_projection = 16
    c.model.hidden_size = 16
    c.model.dropout = 0.0
    c.data.batch_size = 4
    c.data.crop_frames = 48
    c.data.eval_batch_size = 2
    c.data.pad_to_multiple = 32
    c.optimizer.learning_rate = 1e-2
    c.optimizer.warmup_steps = 3
    c.train.num_steps = 30
    c.train.log_every = 10
    c.train.eval_every = 0
    c.checkpoint.every = 10
    c.predict.chunk_seconds = 4.0
    c.predict.overlap_seconds = 1.0
  return c
