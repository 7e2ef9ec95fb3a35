"""Custom layers used by the bundled sample models.

They are registered for saving under the package ``maskviz_samples``, so a sample that uses
one (``custom_layer_no_masking.keras``, ``explicit_mask_override.keras``) loads with plain
``keras.saving.load_model`` once this module has been imported (``import maskviz.samples``
does that). ``maskviz.loading`` imports it by itself when a file names a
``maskviz_samples>...`` class.
"""

from __future__ import annotations

import keras

PACKAGE = "maskviz_samples"


@keras.saving.register_keras_serializable(package=PACKAGE)
class ScaleShift(keras.layers.Layer):
    """Per-step, per-feature ``x * scale + shift``.

    Elementwise, so it could pass a mask on unchanged, but it deliberately neither sets
    ``supports_masking`` nor defines ``compute_mask``: Keras drops the incoming mask here
    (with a ``UserWarning`` at graph-construction time) and everything downstream trains on
    padding. This is the bug ``custom_layer_no_masking.keras`` shows.
    """

    def build(self, input_shape):
        dim = input_shape[-1]
        self.scale = self.add_weight(name="scale", shape=(dim,), initializer="ones")
        self.shift = self.add_weight(name="shift", shape=(dim,), initializer="zeros")

    def call(self, inputs):
        return inputs * self.scale + self.shift

    def compute_output_shape(self, input_shape):
        return input_shape


@keras.saving.register_keras_serializable(package=PACKAGE)
class PaddingMask(keras.layers.Layer):
    """Outputs the boolean padding mask ``tokens != pad_id`` as an ordinary tensor.

    Used by ``explicit_mask_override.keras`` to pass one sequence's mask explicitly
    (``mask=``) to a layer reading another sequence. Being a layer call in the Functional
    graph, the explicit ``mask=`` survives saving and loading.
    """

    def __init__(self, pad_id: int = 0, **kwargs):
        super().__init__(**kwargs)
        self.pad_id = pad_id

    def call(self, tokens):
        return keras.ops.not_equal(tokens, self.pad_id)

    def compute_output_spec(self, tokens):
        return keras.KerasTensor(tokens.shape, dtype="bool")

    def get_config(self):
        return {**super().get_config(), "pad_id": self.pad_id}
