"""A workdir's config.json against a later command's config: what may change and what may not."""

import json

import ml_collections
import pytest

from mir_jax.train import run_config


def _config(**overrides):
  c = ml_collections.ConfigDict({
      'seed': 0,
      'task': {'name': 'onset', 'threshold': 0.4, 'tag_names': ('a', 'b')},
      'model': {'hidden_size': 16},
      'features': {'hop_length': 441, 'n_mels': 80},
      'data': {'crop_frames': 500, 'num_threads': 2, 'eval_batch_size': 8,
               'synth': {'duration': 20.0, 'num_eval': 16}},
      'optimizer': {'learning_rate': 1e-3},
      'train': {'num_steps': 100},
      'eval': {'checkpoint': 'best'},
  })
  for key, value in overrides.items():
    node = c
    *parents, leaf = key.split('.')
    for name in parents:
      node = node[name]
    node[leaf] = value
  return c


def _workdir(tmp_path, config):
  with open(tmp_path / 'config.json', 'w') as f:
    json.dump(config.to_dict(), f)
  return str(tmp_path)


def test_differences_name_each_changed_leaf_with_both_values():
  lines = run_config.differences(_config().to_dict(),
                                 _config(**{'model.hidden_size': 32, 'data.synth.duration': 10.0}))
  assert lines == ['data.synth.duration: run 20.0, this command 10.0',
                   'model.hidden_size: run 16, this command 32']


def test_tuples_equal_their_json_lists_and_keys_in_one_config_only_are_not_compared():
  saved = json.loads(json.dumps(_config().to_dict()))  # tag_names became a list
  saved['model']['removed_since'] = 1
  current = _config()
  current.model.added_since = 2
  assert run_config.differences(saved, current) == []


def test_crop_frames_zero_matches_the_resolved_value_of_the_run(tmp_path):
  run_config.check(_workdir(tmp_path, _config()), _config(**{'data.crop_frames': 0}), 'train')
  with pytest.raises(run_config.ConfigMismatchError, match=r'data\.crop_frames'):
    run_config.check(_workdir(tmp_path, _config()), _config(**{'data.crop_frames': 256}), 'train')


def test_resume_may_extend_and_change_io_but_not_what_is_trained(tmp_path):
  workdir = _workdir(tmp_path, _config())
  run_config.check(workdir, _config(**{'train.num_steps': 500, 'data.num_threads': 1,
                                       'data.eval_batch_size': 2, 'data.synth.num_eval': 4,
                                       'eval.checkpoint': 'latest'}), 'train')
  for key, value in [('optimizer.learning_rate', 1e-4), ('seed', 1), ('features.n_mels', 128),
                     ('data.synth.duration', 10.0), ('task.threshold', 0.5)]:
    with pytest.raises(run_config.ConfigMismatchError, match=key.replace('.', r'\.')) as e:
      run_config.check(workdir, _config(**{key: value}), 'train')
    assert 'another --workdir' in str(e.value) and 'Nothing was written' in str(e.value)


def test_eval_and_predict_need_the_trained_model_features_and_labels_only(tmp_path):
  workdir = _workdir(tmp_path, _config())
  for mode in ('eval', 'predict'):
    # Other decoding, other evaluation data, another learning rate: scoring is still valid.
    run_config.check(workdir, _config(**{'task.threshold': 0.05, 'data.synth.duration': 5.0,
                                         'optimizer.learning_rate': 1.0}), mode)
    for key, value in [('model.hidden_size', 8), ('features.hop_length', 512),
                       ('task.tag_names', ('b', 'a')), ('task.name', 'chord')]:
      with pytest.raises(run_config.ConfigMismatchError, match=key.replace('.', r'\.')):
        run_config.check(workdir, _config(**{key: value}), mode)


def test_a_new_workdir_accepts_any_config_and_a_broken_record_is_named(tmp_path):
  run_config.check(str(tmp_path), _config(), 'train')
  (tmp_path / 'config.json').write_text('{"model": ')
  with pytest.raises(run_config.ConfigMismatchError, match='config.json is not valid JSON'):
    run_config.check(str(tmp_path), _config(), 'eval')
