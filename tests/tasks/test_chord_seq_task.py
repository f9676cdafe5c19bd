"""Chord-sequence tokens, detokenisation, token error rate and majmin scoring."""

import mir_eval
import numpy as np
import pytest

from mir_jax.data import datasets, vocab
from mir_jax.data.synth import write_dataset
from mir_jax.tasks import chord_seq
from mir_jax.tasks.chord_seq import ChordSequencePrediction, ChordSequenceTask, TokenVocabulary

# Layout: 3 specials, 25 majmin labels (N, C:maj..B:maj, C:min..B:min), then durations.
BINS = (1, 2, 4, 8)
DUR = {b: 3 + 25 + i for i, b in enumerate(BINS)}
C_MAJ, G_MAJ, A_MIN, N = 3 + 1, 3 + 1 + 7, 3 + 13 + 9, 3


def test_tokenize_hand_made_sequence():
  vocab = TokenVocabulary(BINS)
  seq = [('C:maj', 2.0, 4), ('A:min7', 1.0, 2), ('G:maj/3', 2.5, 5), ('N', 0.4, 1), ('X', 1.0, 2.2)]
  # 5 beats is nearer 4 than 8 by ratio; X (unknown) counts as N.
  assert chord_seq.tokenize(seq, vocab) == [C_MAJ, DUR[4], A_MIN, DUR[2], G_MAJ, DUR[4], N, DUR[1],
                                            N, DUR[2]]
  assert vocab.tokens[C_MAJ] == 'C:maj' and vocab.tokens[A_MIN] == 'A:min'
  assert vocab.tokens[DUR[8]] == '<dur=8>' and len(vocab) == 3 + 25 + 4


def test_detokenize_and_segments():
  vocab = TokenVocabulary(BINS)
  toks = [chord_seq.START, C_MAJ, DUR[4], A_MIN, DUR[2], DUR[1], G_MAJ, A_MIN, DUR[8], chord_seq.END, C_MAJ]
  # a stray duration extends the previous chord; a chord without one lasts the smallest bin
  assert chord_seq.detokenize(toks, vocab) == [('C:maj', 4.0), ('A:min', 3.0), ('G:maj', 1.0),
                                               ('A:min', 8.0)]
  iv, labels = chord_seq.tokens_to_segments(toks, vocab, seconds_per_beat=0.5, start=1.0)
  np.testing.assert_allclose(iv, [[1.0, 3.0], [3.0, 4.5], [4.5, 5.0], [5.0, 9.0]])
  assert labels == ['C:maj', 'A:min', 'G:maj', 'A:min']


def test_edit_distance_and_token_error_rate():
  assert chord_seq.edit_distance('kitten', 'sitting') == 3
  assert chord_seq.edit_distance([], [1, 2, 3]) == 3
  assert chord_seq.edit_distance([1, 2, 3], [1, 2, 3]) == 0
  refs = [[5, 6, 7, 8, chord_seq.END], [5, 6]]
  preds = [[5, 7, 8, chord_seq.END, 9], [5, 6, 6]]   # one deletion, one insertion
  assert chord_seq.token_error_rate(preds, refs) == pytest.approx(2 / 6)


def test_majmin_score_matches_mir_eval_evaluate():
  ref_iv = np.array([[0.0, 1.0], [1.0, 3.0], [3.0, 4.0]])
  ref_lab = ['N', 'C:maj', 'A:min7']
  est_iv = np.array([[0.5, 2.0], [2.0, 3.5], [3.5, 5.0]])
  est_lab = ['C:maj', 'G:maj', 'A:min']
  score, duration = chord_seq.majmin_score(ref_iv, ref_lab, est_iv, est_lab)
  ref = mir_eval.chord.evaluate(ref_iv, ref_lab, est_iv, est_lab)['majmin']
  assert score == pytest.approx(ref)
  assert duration == pytest.approx(4.0)
  assert score == pytest.approx((0.5 + 1.0 + 0.5) / 4.0)  # N on [0,.5], C on [1,2], Am on [3.5,4]


@pytest.fixture(scope='module')
def synth_tracks(tmp_path_factory):
  root = tmp_path_factory.mktemp('chordseq')
  write_dataset(str(root), 2, 3, 8.0, renderer='numpy')
  tracks, _ = datasets.load_dataset_folder(str(root))
  return tracks


def test_synthetic_targets_and_perfect_predictions(synth_tracks):
  # every whole beat count up to 16 is a bin, so the tokens hold the sequence exactly
  task = ChordSequenceTask(max_tokens=40, duration_bins=tuple(range(1, 17)))
  preds = []
  for track in synth_tracks:
    _, clip = task.targets_fn(track, 400, 50.0)
    n = 2 * len(track.chord_sequence)
    assert clip['targets_in'].shape == (41,) and clip['target_mask'].sum() == n + 1
    assert clip['targets_out'][n] == chord_seq.END and clip['targets_in'][0] == chord_seq.START
    np.testing.assert_array_equal(clip['targets_in'][1:n + 1], clip['targets_out'][:n])
    labels = [task.vocab.tokens[t] for t in clip['targets_out'][:n:2]]
    assert labels == [vocab.index_to_label(max(vocab.label_to_index(l), 0))
                      for l, _, _ in track.chord_sequence]
    preds.append(task.decode(clip['targets_out']))
  perfect = task.metrics(preds, synth_tracks)
  assert perfect['token_error_rate'] == 0.0
  assert perfect['majmin'] > 0.999
  # drop the first chord (and its duration): two deletions, and the rest shifts in time
  worse = [ChordSequencePrediction(p.tokens[2:], p.chords[1:]) for p in preds]
  m = task.metrics(worse, synth_tracks)
  total = sum(2 * len(t.chord_sequence) for t in synth_tracks)
  assert m['token_error_rate'] == pytest.approx(4 / total)
  assert m['majmin'] < perfect['majmin']
  # one chord and one duration deleted per track: each half errs alike
  assert perfect['chord_token_error_rate'] == 0.0 == perfect['duration_token_error_rate']
  assert m['chord_token_error_rate'] == pytest.approx(4 / total)
  assert m['duration_token_error_rate'] == pytest.approx(4 / total)


def test_metrics_break_down_long_sequences_and_token_kinds():
  import types
  task = ChordSequenceTask(max_tokens=40, duration_bins=BINS)

  def track(n):  # n one-bar chords at 120 bpm (2 s each), C and G alternating
    labels = ['C:maj' if i % 2 == 0 else 'G:maj' for i in range(n)]
    return types.SimpleNamespace(
        chord_sequence=[(l, 2.0, 4.0) for l in labels],
        chord_intervals=np.array([[2.0 * i, 2.0 * i + 2.0] for i in range(n)]), chord_labels=labels)

  short, long_ = track(3), track(chord_seq.LONG_TOKENS // 2)  # 6 and 16 tokens
  ref = lambda t: chord_seq.tokenize(t.chord_sequence, task.vocab)
  # short: perfect; long: the first chord's label wrong (a chord error, durations right)
  bad = ref(long_)
  bad[0] = A_MIN
  preds = [task.decode(ref(short)), task.decode(bad)]
  m = task.metrics(preds, [short, long_])
  assert m['num_long'] == 1.0
  assert m['token_error_rate_long'] == pytest.approx(1 / 16)
  assert m['token_error_rate'] == pytest.approx(1 / 22)
  assert m['chord_token_error_rate'] == pytest.approx(1 / 11)
  assert m['duration_token_error_rate'] == 0.0
  assert m['majmin_long'] == pytest.approx(7 / 8)
  assert m['majmin'] == pytest.approx((6 * 1.0 + 16 * 7 / 8) / 22)
  # no long reference: no long metrics
  assert 'majmin_long' not in task.metrics(preds[:1], [short])


def test_attention_map_png(tmp_path):
  import matplotlib.image
  weights = np.zeros((3, 5))
  weights[[0, 1, 2], [0, 2, 4]] = 1.0
  path = chord_seq.write_attention_map(str(tmp_path / 'maps' / 'a.png'), np.random.rand(40, 12, 1),
                                       weights, ['C:maj', '<dur=4>', '</s>'], 50.0, 8)
  image = matplotlib.image.imread(path)
  assert image.ndim == 3 and image.shape[0] > 100 and image.shape[1] > 300
  assert image.std() > 0.05  # not blank
  assert sorted(p.name for p in (tmp_path / 'maps').iterdir()) == ['a.png']  # no temp file left
  with pytest.raises(ValueError, match='token names'):
    chord_seq.write_attention_map(str(tmp_path / 'b.png'), np.zeros((4, 2)), weights, ['x'], 50.0, 1)


def test_task_loss_on_a_teacher_forced_batch_dict(synth_tracks):
  """The batch dict the pipeline makes feeds Seq2Seq and the task loss directly."""
  import jax
  import jax.numpy as jnp
  from mir_jax.models.seq2seq import Seq2Seq
  task = ChordSequenceTask(max_tokens=40, label_smoothing=0.1)
  clips = [task.targets_fn(t, 30, 50.0)[1] for t in synth_tracks]
  batch = {k: jnp.asarray(np.stack([c[k] for c in clips])) for k in clips[0]}
  batch['features'] = jnp.asarray(np.random.default_rng(0).normal(size=(2, 30, 6, 1)), jnp.float32)
  batch['lengths'] = jnp.asarray([30, 21], jnp.int32)
  model = Seq2Seq(vocab_size=task.num_outputs, embed_dim=4, encoder_hidden=4, encoder_layers=2,
                  decoder_hidden=8, attention_dim=4, output_hidden=8)
  shapes = jax.eval_shape(model.init, jax.random.PRNGKey(0), batch)
  params = jax.tree_util.tree_map(lambda s: jnp.full(s.shape, 0.01, s.dtype), shapes)['params']
  logits = model.apply({'params': params}, batch, deterministic=True)
  assert logits.shape == (2, 41, task.num_outputs)
  loss, aux = task.loss(logits, batch)
  # near-uniform logits: the loss is about log(vocab), smoothing or not
  assert abs(float(loss) - np.log(task.num_outputs)) < 0.05
  assert 0.0 <= float(aux['token_accuracy']) <= 1.0
