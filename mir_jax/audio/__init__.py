"""Audio: loading and validation (io), host features (features), a feature
cache and standardisation (cache), and the on-device JAX log-mel (frontend).

Submodules are imported explicitly by their users (``from mir_jax.audio import
io``) so that importing the package does not pull in JAX or librosa.
"""
