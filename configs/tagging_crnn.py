r"""Music auto-tagging (multi-label) with a CRNN on log-CQT frames, attention pooling and
transposition-invariant pitch-profile features (for the mode tags).

    python experiments/main.py --config=configs/tagging_crnn.py --workdir=workdirs/tagging_crnn
    python experiments/main.py --config=configs/tagging_crnn.py:aggregation=max \
        --workdir=workdirs/tagging_crnn_max

Renders (once) the synthetic training and disjoint evaluation sets shared with
``chord_crnn`` and ``key_cnn``; the tag vocabulary is the synthetic one
(instruments, families, drums, tempo class, mode, density; the columns of its
``tags.csv``): for another dataset set ``config.task.tag_names`` to its
columns. Evaluates macro ROC-AUC and PR-AUC (scikit-learn);
``--mode=predict`` writes ``<track>.tags.csv`` (thresholded) and
``<track>.tags.json`` (probabilities).

Arguments (``configs/tagging_crnn.py:tiny``): ``tiny`` shrinks everything for
tests; ``small`` is the ablation size (same data and model, 500 steps);
``aggregation=NAME`` picks 'max', 'mean', 'strided', 'recurrent' or 'attention'.
"""

from configs import base
from mir_jax.data.synth.labels import TAG_NAMES


def get_config(arg: str | None = None):
  """Tagging CRNN config; ``arg`` is 'tiny' and/or 'aggregation=NAME' (comma-separated)."""
  args = base.parse_arg(arg, tiny=False, small=False, aggregation='attention')
  c = base.get_config()

  c.task.name = 'tagging'  # multi-label sigmoid over the tag vocabulary
  c.task.tag_names = tuple(TAG_NAMES)  # tag vocabulary, in tags.csv column order
  c.task.threshold = 0.5  # probability at which predict writes a tag as present
  c.task.pos_weight = 2.0  # loss weight of positive labels (tags are sparse)

  c.model.name = 'clip_crnn'  # CNN front end + recurrent layer + aggregation + dense output
  c.model.aggregation = args.aggregation  # 'max', 'mean', 'strided', 'recurrent', 'attention'
  c.model.conv_features = (24, 48, 64)  # channels of each conv block
  c.model.kernel_size = (3, 3)  # (time, freq) kernel
  c.model.freq_pool = (2, 2, 2)  # max pooling over frequency after each block
  c.model.time_pool = (2, 2, 1)  # max pooling over time after each block
  c.model.norm = True  # layer norm over channels after each convolution
  c.model.embed_size = 128  # per-frame embedding width after the CNN
  c.model.rnn_layers = 1  # bidirectional recurrent layers before the aggregation
  c.model.hidden_size = 64  # units per direction
  c.model.cell = 'gru'  # cell of the recurrent layers
  c.model.strided_layers = 2  # stride-2 convolutions of the 'strided' aggregation
  c.model.attention_size = 32  # hidden width of the 'attention' score
  # Mode tags need tonal information that survives transposition and frequency pooling.
  c.model.pitch_profile = 16  # transposition-invariant pitch-profile features; 0 = none
  # Tempo classes are periods: onset-envelope autocorrelation features (tempo tags 0.81 without).
  c.model.rhythm_profile = 16  # tempo / note-density features; 0 = none
  c.model.dense_size = 0  # hidden dense layer before the output; 0 = none
  c.model.dropout = 0.2  # dropout in the CNN and before the output
  c.model.unroll = 1  # scan unroll factor

  # Log-CQT, one bin per semitone over 8 octaves from C1, ~21.5 fps. On log-mel (80 bands,
  # 25 fps, otherwise this config) the mode tags stayed at chance (ROC-AUC 0.569): mel bands
  # are wider than a semitone above ~500 Hz, so major and minor look alike; the CQT
  # resolves pitch classes and still covers timbre up to 8.4 kHz.
  c.features.kind = 'cqt'
  c.features.hop_length = 1024  # 22050 / 1024 ≈ 21.5 fps (a power of 2, as the CQT octaves need)
  c.features.fmin = 32.703  # C1
  c.features.bins_per_octave = 12
  c.features.n_bins = 96

  # 60 tags, many instruments in under 5% of tracks: 300 tracks left the rarest
  # with ~5 positives and overfitted (macro ROC-AUC 0.75 at step 1000).
  c.data.synth.num_train = 1500  # shared with chord_crnn and key_cnn (one rendering)
  c.data.synth.num_eval = 200  # enough positives per rare tag for a stable macro AUC
  c.data.crop_frames = 256  # ~10 s crops
  c.data.batch_size = 16
  c.data.pad_to_multiple = 64
  c.optimizer.learning_rate = 2e-3
  c.optimizer.warmup_steps = 100
  c.train.num_steps = 2200  # ~1.4 steps/s on the quiet 2-core CPU: under 30 minutes
  c.train.eval_every = 1000
  c.checkpoint.every = 500
  c.predict.chunk_seconds = 600.0  # clip model: one chunk per file (chunks would be averaged)
  c.predict.overlap_seconds = 0.0

  if args.small:  # ablation size: same data and model, 500 steps
    c.train.num_steps = 500
    c.train.eval_every = 0  # one evaluation, at the end
    c.checkpoint.every = 250
    c.eval.num_figures = 0
  if args.tiny:
    c.data.synth.num_train = 6
    c.data.synth.num_eval = 4  # AUC needs a tag with positive and negative tracks
    c.data.synth.duration = 6.0
    c.data.synth.renderer = 'numpy'
    c.features.n_bins = 48
    c.features.fmin = 65.406  # C2
    c.model.conv_features = (4, 8)
    c.model.freq_pool = (2, 2)
    c.model.time_pool = (2, 1)
    c.model.embed_size = 16
    c.model.hidden_size = 8
    c.model.dropout = 0.0
    c.data.batch_size = 4
    c.data.crop_frames = 64
    c.data.eval_batch_size = 2
    c.data.pad_to_multiple = 32
    c.optimizer.learning_rate = 1e-2
    c.optimizer.warmup_steps = 3
    c.train.num_steps = 30
    c.train.log_every = 10
    c.train.eval_every = 0
    c.checkpoint.every = 10
  return c
