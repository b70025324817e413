"""A small user package, as a researcher would have one: a network and a data set factory.

hill uses it through import paths only (``examples/tinynet.yaml``):

- ``model.name: examples.tinynet.model:build`` with ``model.latent: encoder.proj``;
- ``data.name: examples.tinynet.data:digit_splits``.
"""
