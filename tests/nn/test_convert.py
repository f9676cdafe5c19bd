"""Numerics against established implementations: Flax and PyTorch."""

import flax.linen as nn
import jax
import jax.numpy as jnp
import numpy as np
import pytest

from mir_jax.nn import convert, recurrent

B, T, F, H = 3, 9, 5, 7
LENGTHS = np.array([9, 5, 2])


def _inputs(seed=0):
  return np.asarray(jax.random.normal(jax.random.PRNGKey(seed), (B, T, F)), np.float32)


def test_lstm_equals_flax_optimized_lstm_cell():
  x = _inputs()
  flax_rnn = nn.RNN(nn.OptimizedLSTMCell(H))
  variables = flax_rnn.init(jax.random.PRNGKey(1), x)
  # Non-zero recurrent biases so a bias mix-up shows.
  variables = jax.tree_util.tree_map(lambda a: a + 0.03, variables)
  want = flax_rnn.apply(variables, x, seq_lengths=jnp.asarray(LENGTHS))
  params = convert.from_flax_lstm(variables['params']['cell'])
  got, _ = recurrent.rnn('lstm', params, jnp.asarray(x), jnp.asarray(LENGTHS))
  valid = recurrent.lengths_to_mask(jnp.asarray(LENGTHS), T)[..., None]
  np.testing.assert_allclose(got * valid, want * valid, atol=1e-5)


def test_gru_equals_flax_gru_cell():
  x = _inputs(2)
  flax_rnn = nn.RNN(nn.GRUCell(H))
  variables = flax_rnn.init(jax.random.PRNGKey(1), x)
  variables = jax.tree_util.tree_map(lambda a: a + 0.03, variables)
  want = flax_rnn.apply(variables, x)
  params = convert.from_flax_gru(variables['params']['cell'])
  got, _ = recurrent.rnn('gru', params, jnp.asarray(x))
  np.testing.assert_allclose(got, want, atol=1e-5)


def test_bidirectional_equals_flax_bidirectional():
  x = _inputs(3)
  lengths = jnp.asarray(LENGTHS)
  model = nn.Bidirectional(nn.RNN(nn.OptimizedLSTMCell(H)), nn.RNN(nn.OptimizedLSTMCell(H)))
  variables = model.init(jax.random.PRNGKey(4), x, seq_lengths=lengths)
  want = model.apply(variables, x, seq_lengths=lengths)
  fwd = convert.from_flax_lstm(variables['params']['forward_rnn']['cell'])
  bwd = convert.from_flax_lstm(variables['params']['backward_rnn']['cell'])
  stacked = jax.tree_util.tree_map(lambda a, b: jnp.stack([a, b]), fwd, bwd)
  got, _ = recurrent.bidirectional('lstm', stacked, jnp.asarray(x), lengths)
  valid = recurrent.lengths_to_mask(lengths, T)[..., None]
  np.testing.assert_allclose(got * valid, want * valid, atol=1e-5)


@pytest.fixture(scope='module')
def torch():
  return pytest.importorskip('torch', reason='PyTorch not installed (pip install -e ".[bench]")')


@pytest.mark.parametrize('cell,module,kwargs', [
    ('lstm', 'LSTM', {}),
    ('gru', 'GRU', {}),
    ('rnn_tanh', 'RNN', {'nonlinearity': 'tanh'}),
    ('rnn_relu', 'RNN', {'nonlinearity': 'relu'}),
])
@pytest.mark.parametrize('bidirectional', [False, True])
def test_stack_equals_pytorch(torch, cell, module, kwargs, bidirectional):
  torch.manual_seed(0)
  layer = getattr(torch.nn, module)(F, H, num_layers=2, batch_first=True,
                                    bidirectional=bidirectional, **kwargs)
  x = _inputs(5)
  packed = torch.nn.utils.rnn.pack_padded_sequence(
      torch.tensor(x), torch.tensor(LENGTHS), batch_first=True, enforce_sorted=False)
  with torch.no_grad():
    out, _ = layer(packed)
  want, _ = torch.nn.utils.rnn.pad_packed_sequence(out, batch_first=True, total_length=T)
  layers = convert.from_torch(layer.state_dict(), cell, num_layers=2,
                              bidirectional=bidirectional)
  got, _ = recurrent.stack(cell, layers, jnp.asarray(x), jnp.asarray(LENGTHS),
                           bidirectional=bidirectional)
  np.testing.assert_allclose(np.asarray(got), want.numpy(), atol=1e-5)


def test_from_torch_rejects_wrong_layer_count(torch):
  layer = torch.nn.LSTM(F, H, num_layers=1)
  with pytest.raises(ValueError, match='weight_ih_l1'):
    convert.from_torch_lstm(layer.state_dict(), num_layers=2)
