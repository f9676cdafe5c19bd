"""Tiny chord seq2seq experiment: train (loss falls), decode, score, attention maps, predict."""

import glob
import json
import os
import sys

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, ROOT)

from configs import chord_seq2seq  # pylint: disable=wrong-import-position


def test_tiny_chord_seq2seq_experiment(tmp_path):
  from mir_jax import predict  # pylint: disable=g-import-not-at-top
  from mir_jax.data.annotations import read_chord_sequence  # pylint: disable=g-import-not-at-top
  from mir_jax.train import experiment  # pylint: disable=g-import-not-at-top
  config = chord_seq2seq.get_config('tiny')
  config.data.root = str(tmp_path / 'data')
  config.train.tensorboard = False
  # Training tracks of mixed lengths (3-5 s), whole and padded; the eval set stays 4 s.
  config.data.synth.train_durations = (3.0, 5.0)
  workdir = str(tmp_path / 'work')
  experiment.train_and_evaluate(config, workdir)

  rows = [json.loads(l) for l in open(os.path.join(workdir, 'metrics.jsonl'))]
  losses = [r['loss'] for r in rows if r['split'] == 'train']
  assert len(losses) == 4 and losses[-1] < 0.8 * losses[0], losses

  result = json.load(open(os.path.join(workdir, 'eval_metrics.json')))
  assert result['step'] == 20
  assert 0.0 <= result['majmin'] <= 1.0
  assert result['token_error_rate'] >= 0.0
  assert result['loss'] > 0.0

  # Whole tracks: crop_frames 0 was resolved to the longest track, padded.
  saved = json.load(open(os.path.join(workdir, 'config.json')))
  assert saved['data']['crop_frames'] > 0 and saved['data']['crop_frames'] % 16 == 0
  train_dir = experiment.dataset_dir(config, 'train')
  assert '_d3-5_' in os.path.basename(train_dir)
  durations = json.load(open(os.path.join(train_dir, 'manifest.json')))['durations']
  assert len(set(durations)) > 1 and 3.0 <= min(durations) <= max(durations) <= 5.0
  frame_rate = experiment.feature_config(config).frame_rate
  assert max(durations) * frame_rate <= saved['data']['crop_frames']
  assert saved['data']['crop_frames'] < 5.0 * frame_rate + 16
  assert '_d4_' in os.path.basename(experiment.dataset_dir(config, 'eval'))
  assert saved['checkpoint']['best_metric'] == 'majmin'

  maps = glob.glob(os.path.join(workdir, 'plots', 'attention_*.png'))
  assert len(maps) == config.eval.num_figures, maps
  assert all(os.path.getsize(p) > 1000 for p in maps)

  # --mode=eval with beam search on the latest checkpoint.
  config.eval.checkpoint = 'latest'
  config.decode.method = 'beam'
  config.decode.beam_size = 2
  again = experiment.evaluate(config, workdir)
  assert again['step'] == 20 and 0.0 <= again['majmin'] <= 1.0

  # decode.compare_beam_sizes scores the same parameters with more decoders: beam 1
  # is greedy decoding, so its scores equal the greedy ones.
  config.decode.method = 'greedy'
  config.decode.compare_beam_sizes = (1, 2)
  both = experiment.evaluate(config, workdir)
  for name in ('majmin', 'token_error_rate'):
    assert both['beam1_' + name] == both[name], both
    assert 'beam2_' + name in both, both

  # eval.metrics_prefix scores the run on other data (shorter clips here) and adds the
  # scores beside the earlier ones instead of replacing them.
  config.data.synth.duration = 3.0
  config.eval.metrics_prefix = 'len3_'
  short = experiment.evaluate(config, workdir)
  saved = json.load(open(os.path.join(workdir, 'eval_metrics.json')))
  assert saved['beam2_majmin'] == both['beam2_majmin'] and saved['step'] == 20
  assert saved['len3_majmin'] == short['len3_majmin'] and saved['len3_step'] == 20
  assert saved['len3_loss'] != both['loss']  # other clips were scored
  config.eval.metrics_prefix = ''
  config.data.synth.duration = 4.0

  # Predict writes a chord-sequence file per audio file.
  eval_dir = experiment.dataset_dir(config, 'eval')
  audio = sorted(glob.glob(os.path.join(eval_dir, '**', '*.wav'), recursive=True))[:1]
  assert audio
  out_dir = str(tmp_path / 'pred')
  written = predict.predict(config, workdir, audio[0], out_dir)
  assert len(written) == 1 and written[0].endswith('.chords.txt')
  read_chord_sequence(written[0])


def test_train_durations_must_be_a_shortest_longest_pair():
  import pytest  # pylint: disable=g-import-not-at-top
  from mir_jax.train import experiment  # pylint: disable=g-import-not-at-top
  config = chord_seq2seq.get_config('tiny')
  for bad in [(5.0,), (6.0, 3.0), (0.0, 3.0)]:
    config.data.synth.train_durations = bad
    with pytest.raises(ValueError, match=r'config\.data\.synth\.train_durations'):
      experiment.synth_dir(config, 'train')
  config.data.synth.train_durations = (2.0, 6.5)
  assert '_d2-6.5_' in experiment.synth_dir(config, 'train')
  assert '_d4_' in experiment.synth_dir(config, 'eval')  # the eval set keeps data.synth.duration
