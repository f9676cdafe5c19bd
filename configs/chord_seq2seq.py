r"""Chord-sequence transcription (chord tokens + beat durations) with an attention seq2seq.

    python experiments/main.py --config=configs/chord_seq2seq.py --workdir=workdirs/chord_seq2seq

Renders 4096 numpy-synthesised training tracks and 256 evaluation tracks of 10 s
(disjoint composer seeds) under ``config.data.root``, trains a bidirectional
LSTM encoder (2 layers, max-pooling x2 in time) with an additive-attention LSTM
decoder on a log-CQT with a large hop (~10.8 frames per second), and evaluates
by decoding token sequences (``config.decode``: greedy or beam) and scoring
them with ``mir_eval.chord`` majmin (durations mapped back to seconds with the
reference tempo) and the token error rate, also split into chord and duration
tokens and over references of >= 16 tokens (``*_long``). Each evaluation writes
attention maps of the first ``eval.num_figures`` evaluation tracks to
``workdir/plots/attention_<track>.png``.

Measured (7000 steps, one core of the 2-core CPU, 26.4 min): majmin 0.819, token
error rate 0.192 (chord tokens 0.080, duration tokens 0.303); beam 4: 0.824 / 0.194.
Without ``model.rhythm_features`` the same run reached 0.727 / 0.303 (duration
tokens 0.509): beat durations need the tempo, which the onset-autocorrelation
features give the output layer. 1024 training tracks (the old default) memorised
the training set (train TER 0.006, held-out 0.61). Then:

    python experiments/main.py --config=configs/chord_seq2seq.py --workdir=workdirs/chord_seq2seq \
        --mode=predict --input=clip.wav --output=/tmp/chord_seqs

writes ``<track>.chords.txt`` chord sequences (seconds at 120 bpm).

Whole tracks: the token targets describe the whole track, so training does not
crop; ``data.crop_frames = 0`` means "the longest training track, rounded up to
``data.pad_to_multiple``" (resolved at the start of training and recorded in
``config.json``); shorter tracks are zero-padded and masked. A positive
``crop_frames`` shorter than a training track is an error. Long tracks (the
40 s clips of ``configs/sweeps/seq2seq_attention.py``) thus cost more per step.

Arguments (``configs/chord_seq2seq.py:tiny``): ``tiny`` shrinks everything (8
short tracks, a small model, 20 steps) for tests and quick looks; ``small`` is the
ablation size (same data and model, 1500 steps).
"""

import ml_collections

from configs import base


def get_config(arg: str | None = None):
  """Chord seq2seq config; ``arg`` is '' or 'tiny'."""
  args = base.parse_arg(arg, tiny=False, small=False)
  c = base.get_config()

  c.task.name = 'chord_seq'  # chord tokens with quantised beat durations, one sequence per clip
  c.task.max_tokens = 32  # token budget per clip (2 per chord; 10 s clips need < 32)
  c.task.duration_bins = (1, 2, 3, 4, 5, 6, 7, 8, 12, 16)  # beat durations the tokens can say
  c.task.label_smoothing = 0.1  # cross-entropy label smoothing of the token targets

  c.model.name = 'seq2seq'  # BLSTM encoder with time downsampling + attention LSTM decoder
  c.model.embed_dim = 32  # decoder token embedding width
  c.model.encoder_hidden = 64  # units per direction of each encoder layer
  c.model.encoder_layers = 2  # bidirectional encoder layers
  c.model.encoder_cell = 'lstm'  # 'lstm', 'gru', 'rnn_tanh' or 'rnn_relu'
  c.model.downsample = 'pool'  # between encoder layers: 'none', 'pool', 'conv' or 'stack'
  c.model.downsample_factor = 2  # time reduction at each downsampling
  c.model.input_projection = 0  # dense ReLU width before the encoder; 0 = none
  c.model.decoder_hidden = 128  # decoder LSTM units ('dot' attention needs 2 * encoder_hidden)
  c.model.attention = 'additive'  # 'additive', 'dot', 'general', 'location' or 'none' (encoder summary)
  c.model.attention_dim = 64  # hidden width of the additive attention
  c.model.input_feeding = True  # feed the previous context into the next decoder step
  c.model.output_hidden = 128  # feed-forward width over [decoder hidden; context]
  c.model.rhythm_features = 16  # tempo features (onset autocorrelation) into that layer; 0 = none
  c.model.dropout = 0.2  # dropout on encoder layer inputs, the output layer and decoder input tokens
  c.model.unroll = 1  # scan unroll factor

  c.decode = ml_collections.ConfigDict()  # how evaluation and predict generate tokens
  c.decode.method = 'greedy'  # 'greedy' or 'beam'
  c.decode.beam_size = 4  # beams of 'beam' (ignored by 'greedy')
  c.decode.length_penalty = 0.0  # beam score / length ** penalty; 0 = summed log-probabilities
  c.decode.max_len = 0  # decoding steps; 0 = task.max_tokens + 1 (room for the end token)
  c.decode.compare_beam_sizes = (4,)  # also scored at each eval, as beam<k>_<metric>

  # Log-CQT, 1 bin per semitone over 7 octaves from C1, about 10.8 frames per second.
  c.features.kind = 'cqt'
  c.features.hop_length = 2048  # 22050 / 2048 ≈ 10.8 fps (a power of 2, as the CQT octaves need)
  c.features.fmin = 32.703  # C1
  c.features.bins_per_octave = 12
  c.features.n_bins = 84

  c.data.synth.num_train = 4096  # numpy-rendered training clips (1024 overfit: train TER 0.006, eval 0.6)
  c.data.synth.num_eval = 256  # ~10% of the references have >= 16 tokens (metrics *_long)
  c.data.synth.duration = 10.0  # seconds per clip = one token sequence
  c.data.synth.renderer = 'numpy'  # fast additive synthesis
  c.data.crop_frames = 0  # 0 = whole tracks (the longest, padded); targets describe whole clips
  c.data.batch_size = 32
  c.data.eval_batch_size = 16
  c.data.pad_to_multiple = 32  # also rounds the whole-track training length
  c.optimizer.learning_rate = 2e-3
  c.optimizer.warmup_steps = 100
  c.train.num_steps = 7000
  c.train.log_every = 50
  c.train.eval_every = 1000
  c.checkpoint.every = 1000

  if args.small:  # ablation size: same data and model, 1500 steps
    c.train.num_steps = 1500
    c.train.eval_every = 0  # one evaluation, at the end
    c.checkpoint.every = 250
    c.eval.num_figures = 0
  if args.tiny:
    c.data.synth.num_train = 8
    c.data.synth.num_eval = 2
    c.data.synth.duration = 4.0
    c.features.n_bins = 36
    c.features.fmin = 65.406  # C2
    c.task.max_tokens = 16
    c.model.embed_dim = 8
    c.model.encoder_hidden = 16
    c.model.decoder_hidden = 32  # 2 * encoder_hidden, so 'dot' attention works too
    c.model.attention_dim = 16
    c.model.output_hidden = 32
    c.model.dropout = 0.0
    c.eval.num_figures = 1  # one attention map
    c.data.batch_size = 4
    c.data.eval_batch_size = 2
    c.data.pad_to_multiple = 16
    c.optimizer.learning_rate = 1e-2
    c.optimizer.warmup_steps = 2
    c.train.num_steps = 20
    c.train.log_every = 5
    c.train.eval_every = 0
    c.checkpoint.every = 10
    c.predict.chunk_seconds = 4.0
    c.predict.overlap_seconds = 1.0
  return c
