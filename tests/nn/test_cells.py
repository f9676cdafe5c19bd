"""Cell initialisers and single steps."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from mir_jax.nn import cells


@pytest.mark.parametrize('name,gates', [('lstm', 4), ('gru', 3), ('rnn_tanh', 1),
                                        ('rnn_relu', 1)])
def test_init_shapes_orthogonal_recurrence_and_glorot_inputs(name, gates):
  cell = cells.get_cell(name)
  p = cell.init(jax.random.PRNGKey(0), 40, 16)
  assert p['w_ih'].shape == (40, gates * 16)
  assert p['w_hh'].shape == (16, gates * 16)
  assert p['b'].shape == (gates * 16,)
  for g in range(gates):
    block = np.asarray(p['w_hh'][:, g * 16:(g + 1) * 16])
    np.testing.assert_allclose(block.T @ block, np.eye(16), atol=1e-5)
  # Glorot-uniform bound per gate block: sqrt(6 / (fan_in + fan_out)).
  bound = np.sqrt(6 / (40 + 16))
  assert np.abs(p['w_ih']).max() <= bound
  assert np.abs(p['w_ih']).max() > 0.8 * bound


def test_lstm_forget_bias_is_one_and_others_zero():
  p = cells.lstm_init(jax.random.PRNGKey(0), 3, 8)
  b = np.asarray(p['b']).reshape(4, 8)  # i, f, g, o
  np.testing.assert_array_equal(b[1], 1.0)
  np.testing.assert_array_equal(b[[0, 2, 3]], 0.0)


def test_relu_rnn_is_nonnegative_and_tanh_bounded():
  x = 5 * jax.random.normal(jax.random.PRNGKey(1), (4, 3))
  p = cells.rnn_init(jax.random.PRNGKey(0), 3, 6)
  _, h_relu = cells.rnn_relu_step(p, jnp.zeros((4, 6)), x)
  _, h_tanh = cells.rnn_tanh_step(p, jnp.zeros((4, 6)), x)
  assert (h_relu >= 0).all() and (h_relu > 0).any()
  assert (jnp.abs(h_tanh) < 1).all()
  np.testing.assert_allclose(h_relu, jnp.maximum(x @ p['w_ih'], 0), atol=1e-6)
  np.testing.assert_allclose(h_tanh, jnp.tanh(x @ p['w_ih']), atol=1e-6)


def test_unknown_cell_names_the_choices():
  with pytest.raises(ValueError, match='lstm'):
    cells.get_cell('lstn')
