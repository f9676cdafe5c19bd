r"""Global key estimation (24 keys) with a CNN on a log-CQT and global aggregation.

    python experiments/main.py --config=configs/key_cnn.py --workdir=workdirs/key_cnn
    python experiments/main.py --config=configs/key_cnn.py:aggregation=attention \
        --workdir=workdirs/key_cnn_attention

Renders (once) the synthetic training and disjoint evaluation sets shared with
``chord_crnn`` and ``tagging_crnn``, trains on whole tracks, and evaluates
with ``mir_eval.key.weighted_score`` and accuracy; ``--mode=predict`` writes
one-line ``.key`` files. ``config.model.aggregation`` (or the ``aggregation=``
argument) picks how frames become one vector: 'max', 'mean', 'strided',
'recurrent' or 'attention' (the ablation).

Arguments (``configs/key_cnn.py:tiny``): ``tiny`` shrinks everything for tests;
``small`` is the ablation size (same data and model, 300 steps).
"""

from configs import base


def get_config(arg: str | None = None):
  """Key CNN config; ``arg`` is 'tiny' and/or 'aggregation=NAME' (comma-separated)."""
  args = base.parse_arg(arg, tiny=False, small=False, aggregation='mean')
  c = base.get_config()

  c.task.name = 'key'  # 24-way clip classification
  c.task.label_smoothing = 0.1  # cross-entropy label smoothing

  c.model.name = 'clip_cnn'  # CNN front end + aggregation over time + dense output
  c.model.aggregation = args.aggregation  # 'max', 'mean', 'strided', 'recurrent', 'attention'
  c.model.conv_features = (16, 32, 32)  # channels of each conv block
  c.model.kernel_size = (3, 3)  # (time, freq) kernel
  c.model.freq_pool = (2, 1, 1)  # max pooling over frequency: 24 -> 12 bins per octave
  c.model.time_pool = (2, 1, 1)  # max pooling over time after each block
  c.model.norm = True  # layer norm over channels after each convolution
  c.model.embed_size = 64  # per-frame embedding width before the aggregation (per pitch class)
  # Fold frequency into 12 pitch classes and share the output across them
  # (transposition-equivariant; needs a CQT starting on a C and 12 bins per
  # octave after freq_pool); 0 = a plain dense head.
  c.model.pitch_classes = 12
  c.model.rnn_layers = 0  # recurrent layers before the aggregation (0: plain CNN)
  c.model.hidden_size = 32  # units per direction ('recurrent' aggregation / rnn_layers)
  c.model.cell = 'gru'  # cell of the recurrent layers
  c.model.strided_layers = 2  # stride-2 convolutions of the 'strided' aggregation
  c.model.attention_size = 32  # hidden width of the 'attention' score
  c.model.dense_size = 0  # hidden dense layer before the output; 0 = none
  c.model.dropout = 0.2  # dropout in the CNN and before the output
  c.model.unroll = 1  # scan unroll factor

  # Log-CQT, 2 bins per semitone over 7 octaves from C1, about 5.4 frames per second.
  c.features.kind = 'cqt'
  c.features.hop_length = 4096  # 22050 / 4096 ≈ 5.4 fps (a power of 2, as the CQT octaves need)
  c.features.fmin = 32.703  # C1
  c.features.bins_per_octave = 24
  c.features.n_bins = 168

  c.data.synth.num_train = 1500  # shared with chord_crnn and tagging_crnn (one rendering)
  c.data.synth.num_eval = 200
  c.data.crop_frames = 112  # whole 20 s tracks (108 frames) plus padding
  c.data.batch_size = 16
  c.data.pad_to_multiple = 16
  c.optimizer.learning_rate = 2e-3
  c.optimizer.warmup_steps = 100
  c.train.num_steps = 1000  # weighted score 1.000 already at step 500 (of 2000)
  c.train.eval_every = 500
  c.checkpoint.every = 500
  c.predict.chunk_seconds = 600.0  # clip model: one chunk per file (chunks would be averaged)
  c.predict.overlap_seconds = 0.0

  if args.small:  # ablation size: same data and model, 300 steps
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
    c.model.conv_features = (4, 8)
    c.model.freq_pool = (1, 1)
    c.model.time_pool = (1, 1)
    c.model.embed_size = 4
    c.model.hidden_size = 8
    c.model.dropout = 0.0
    c.task.label_smoothing = 0.0
    c.data.batch_size = 4
    c.data.crop_frames = 32
    c.data.eval_batch_size = 2
    c.data.pad_to_multiple = 16
    c.optimizer.learning_rate = 1e-2
    c.optimizer.warmup_steps = 3
    c.train.num_steps = 30
    c.train.log_every = 10
    c.train.eval_every = 0
    c.checkpoint.every = 10
  return c
