"""The linen wrapper holds params in the pure layout and calls the pure stack."""

import jax
import jax.numpy as jnp
import numpy as np

from mir_jax.nn import recurrent
from mir_jax.nn.modules import RecurrentStack


def test_recurrent_stack_module_equals_pure_stack():
  x = jax.random.normal(jax.random.PRNGKey(0), (2, 6, 4))
  lengths = jnp.array([6, 3])
  module = RecurrentStack(cell='lstm', hidden_size=5, num_layers=2, dropout=0.3)
  variables = module.init(jax.random.PRNGKey(1), x, lengths)
  layers = [variables['params'][f'layer_{i}'] for i in range(2)]
  assert layers[0]['w_hh'].shape == (2, 5, 20)  # stacked directions
  assert layers[1]['w_ih'].shape == (2, 10, 20)
  got = module.apply(variables, x, lengths)
  want, _ = recurrent.stack('lstm', layers, x, lengths, bidirectional=True)
  np.testing.assert_allclose(got, want, atol=1e-6)
  # Dropout only when not deterministic, drawn from the 'dropout' collection.
  noisy = module.apply(variables, x, lengths, deterministic=False,
                       rngs={'dropout': jax.random.PRNGKey(2)})
  assert not np.allclose(noisy, got)
