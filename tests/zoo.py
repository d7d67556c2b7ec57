"""A zoo of models built the way users write them, each healthy and broken on purpose.

Every :class:`Case` builds its subject with a fixed seed and tiny data and states the
verdict that :func:`vgrad.diagnose` must give, and which parts the model has, written
by hand here so that the advice can be checked against them independently of vgrad.
Used by ``tests/test_zoo.py`` and ``benchmarks/verdict_accuracy.py``.
"""

from __future__ import annotations

import functools
import os
import tempfile
from dataclasses import dataclass

import numpy as np

import keras

import vgrad

SEED = 0
NUM_TOKENS, SEQUENCE, NUM_CLASSES = 24, 8, 4


@dataclass(frozen=True)
class Case:
    """One zoo entry: ``build()`` returns the arguments of :func:`vgrad.diagnose`."""

    name: str
    family: str
    expected: str
    has: frozenset  # "sigmoid", "tanh", "relu", "batch_norm", "layer_norm", "residual", "simple_rnn"
    build: object


@functools.lru_cache(maxsize=None)
def digits(count=96):
    (x, y), _ = vgrad.load_digits(seed=SEED)
    return x[:count], y[:count]


@functools.lru_cache(maxsize=None)
def tokens(count=64):
    """Token sequences whose class is the first token modulo ``NUM_CLASSES``."""
    rng = np.random.default_rng(SEED)
    x = rng.integers(0, NUM_TOKENS, size=(count, SEQUENCE)).astype("int32")
    return x, (x[:, 0] % NUM_CLASSES).astype("int32")


def seeded(function):
    def build():
        keras.utils.set_random_seed(SEED)
        return function()

    return build


def fit_monitored(model, x, y, *, optimizer, loss, epochs, batch_size=16):
    model.compile(optimizer=optimizer, loss=loss)
    monitor = vgrad.GradientMonitor()
    model.fit(x, y, batch_size=batch_size, epochs=epochs, verbose=0, shuffle=False,
              callbacks=[monitor])
    return (monitor,)


# -- builders ----------------------------------------------------------------------------

def mlp_input_dim(activation="relu", depth=3, initializer="he_normal", width=32):
    """Keras 2 style: the first layer gets ``input_dim``."""
    layers = [keras.layers.Dense(width, activation=activation, input_dim=64,
                                 kernel_initializer=initializer)]
    layers += [keras.layers.Dense(width, activation=activation, kernel_initializer=initializer)
               for _ in range(depth - 1)]
    return keras.Sequential(layers + [keras.layers.Dense(10)])


def cnn_batch_norm():
    """keras-io style functional CNN: Conv2D, BatchNormalization, ReLU, pooling."""
    inputs = keras.Input((8, 8, 1))
    x = inputs
    for filters in (8, 16):
        x = keras.layers.Conv2D(filters, 3, padding="same", use_bias=False)(x)
        x = keras.layers.BatchNormalization()(x)
        x = keras.layers.Activation("relu")(x)
    x = keras.layers.GlobalAveragePooling2D()(x)
    return keras.Model(inputs, keras.layers.Dense(10)(x), name="cnn")


def residual_mlp(blocks=3, width=32, output_initializer="glorot_uniform"):
    """ResNet-style blocks: ``x + Dense(relu) -> Dense``."""
    inputs = keras.Input((64,))
    x = keras.layers.Dense(width)(inputs)
    for _ in range(blocks):
        h = keras.layers.Dense(width, activation="relu", kernel_initializer="he_normal")(x)
        h = keras.layers.Dense(width)(h)
        x = keras.layers.Add()([x, h])
    outputs = keras.layers.Dense(10, kernel_initializer=output_initializer)(x)
    return keras.Model(inputs, outputs, name="resnet")


def transformer(embedding_scale=None):
    """One encoder block: Embedding, MultiHeadAttention, LayerNorm, GELU MLP, residuals."""
    initializer = ("uniform" if embedding_scale is None
                   else keras.initializers.RandomNormal(stddev=embedding_scale))
    inputs = keras.Input((SEQUENCE,), dtype="int32")
    x = keras.layers.Embedding(NUM_TOKENS, 16, embeddings_initializer=initializer)(inputs)
    attended = keras.layers.MultiHeadAttention(2, 8)(x, x)
    x = keras.layers.LayerNormalization()(keras.layers.Add()([x, attended]))
    h = keras.layers.Dense(32, activation="gelu")(x)
    x = keras.layers.LayerNormalization()(keras.layers.Add()([x, keras.layers.Dense(16)(h)]))
    x = keras.layers.GlobalAveragePooling1D()(x)
    return keras.Model(inputs, keras.layers.Dense(NUM_CLASSES)(x), name="transformer")


def recurrent(kind="LSTM", zero=False, head=2):
    layer = getattr(keras.layers, kind)
    zeros = {"kernel_initializer": "zeros", "recurrent_initializer": "zeros"} if zero else {}
    layers = [keras.Input((SEQUENCE,), dtype="int32"), keras.layers.Embedding(NUM_TOKENS, 8),
              layer(16, **zeros)]
    layers += [keras.layers.Dense(16, activation="relu") for _ in range(head)]
    return keras.Sequential(layers + [keras.layers.Dense(NUM_CLASSES)], name=kind.lower())


class Subclassed(keras.Model):
    """Variables are created on the first batch, as usual for subclassed models."""

    def __init__(self, activation="relu", zero_middle=False):
        super().__init__(name="subclassed")
        middle = "zeros" if zero_middle else "he_normal"
        self.first = keras.layers.Dense(32, activation=activation)
        self.middle = keras.layers.Dense(32, activation=activation, kernel_initializer=middle)
        self.out = keras.layers.Dense(10)

    def call(self, x):
        return self.out(self.middle(self.first(x)))


class CustomStep(keras.Model):
    """A functional-style model with its own ``train_step`` calling ``apply_gradients``."""

    def train_step(self, data):
        import tensorflow as tf

        x, y = data
        with tf.GradientTape() as tape:
            loss = self.compute_loss(x=x, y=y, y_pred=self(x, training=True))
        gradients = tape.gradient(loss, self.trainable_variables)
        self.optimizer.apply_gradients(zip(gradients, self.trainable_variables))
        return {"loss": loss}


def custom_step_model(activation="relu", depth=2):
    inputs = keras.Input((64,))
    x = inputs
    for _ in range(depth):
        x = keras.layers.Dense(32, activation=activation)(x)
    return CustomStep(inputs, keras.layers.Dense(10)(x), name="custom_step")


def regression(activation="relu", initializer="he_normal", depth=2):
    inputs = keras.Input((64,))
    x = inputs
    for _ in range(depth):
        x = keras.layers.Dense(32, activation=activation, kernel_initializer=initializer)(x)
    model = keras.Model(inputs, keras.layers.Dense(1)(x), name="regression")
    model.compile(optimizer="sgd", loss="mse")
    return model


def binary_classifier(bias=0.0):
    inputs = keras.Input((64,))
    x = keras.layers.Dense(32, activation="relu", kernel_initializer="he_normal")(inputs)
    x = keras.layers.Dense(32, activation="relu", kernel_initializer="he_normal",
                           bias_initializer=keras.initializers.Constant(bias))(x)
    return keras.Model(inputs, keras.layers.Dense(1, activation="sigmoid")(x), name="binary")


def binary_data():
    x, y = digits()
    return x, (y >= 5).astype("int32")


def regression_data():
    x, _ = digits()
    weights = np.random.default_rng(SEED).normal(size=(64, 1)).astype("float32") / 8
    return x, x @ weights


def reloaded(model, suffix):
    """``model`` saved as ``.keras`` or legacy ``.h5`` and loaded back (uncompiled for .h5)."""
    with tempfile.TemporaryDirectory() as folder:
        path = os.path.join(folder, f"model{suffix}")
        model.save(path)
        return keras.models.load_model(path, compile=suffix != ".h5")


def one_huge_step(model, x, y):
    """Dead ReLUs as in training: one SGD step with a huge learning rate."""
    model.compile(optimizer=keras.optimizers.SGD(10.0),
                  loss=keras.losses.SparseCategoricalCrossentropy(from_logits=True))
    model.train_on_batch(x, y)
    return model


def beta(model, value):
    """Shift every BatchNorm output by ``value`` (a large negative bias kills the ReLUs)."""
    for layer in model.layers:
        if isinstance(layer, keras.layers.BatchNormalization):
            layer.beta.assign(np.full(layer.beta.shape, value, "float32"))
    return model


def zero_output(model):
    model.layers[-1].kernel.assign(np.zeros(model.layers[-1].kernel.shape, "float32"))
    return model


def big(stddev):
    return keras.initializers.RandomNormal(stddev=stddev, seed=SEED)


SIGMOID, RELU, TANH = frozenset({"sigmoid"}), frozenset({"relu"}), frozenset({"tanh"})
CNN_HAS = frozenset({"relu", "batch_norm"})
RES_HAS = frozenset({"relu", "residual"})
TRANSFORMER_HAS = frozenset({"layer_norm", "residual"})
RNN_HAS = frozenset({"relu"})


def _case(name, family, expected, has, function):
    return Case(name, family, expected, frozenset(has), seeded(function))


CASES = (
    _case("input_dim relu/he", "sequential input_dim", "healthy", RELU,
          lambda: (mlp_input_dim(), *digits())),
    _case("input_dim deep sigmoid", "sequential input_dim", "vanishing", SIGMOID,
          lambda: (mlp_input_dim("sigmoid", depth=10, initializer="glorot_uniform"), *digits())),
    _case("input_dim N(0, 1) init", "sequential input_dim", "exploding", RELU,
          lambda: (mlp_input_dim(depth=8, initializer=big(1.0)), *digits())),
    _case("input_dim N(0, 1e3) init", "sequential input_dim", "exploding", RELU,
          lambda: (mlp_input_dim(depth=8, initializer=big(1e3)), *digits())),
    _case("cnn + batchnorm", "functional CNN", "healthy", CNN_HAS,
          lambda: (cnn_batch_norm(), digits()[0].reshape(-1, 8, 8, 1), digits()[1])),
    _case("cnn, beta = -100", "functional CNN", "dead units", CNN_HAS,
          lambda: (beta(cnn_batch_norm(), -100.0), digits()[0].reshape(-1, 8, 8, 1), digits()[1])),
    _case("cnn, Adam lr 0.5 fit", "functional CNN", "not learning", CNN_HAS,
          lambda: fit_monitored(cnn_batch_norm(), digits()[0].reshape(-1, 8, 8, 1), digits()[1],
                                optimizer=keras.optimizers.Adam(0.5),
                                loss=keras.losses.SparseCategoricalCrossentropy(True), epochs=4)),
    _case("resnet blocks", "residual", "healthy", RES_HAS,
          lambda: (residual_mlp(), *digits())),
    _case("resnet, zero output", "residual", "zero layer", RES_HAS,
          lambda: (residual_mlp(output_initializer="zeros"), *digits())),
    _case("transformer", "transformer", "healthy", TRANSFORMER_HAS,
          lambda: (transformer(), *tokens())),
    _case("transformer, N(0, 1e20) embedding", "transformer", "exploding", TRANSFORMER_HAS,
          lambda: (transformer(embedding_scale=1e20), *tokens())),
    _case("transformer + AdamW fit", "transformer", "healthy", TRANSFORMER_HAS,
          lambda: fit_monitored(transformer(), *tokens(), optimizer=keras.optimizers.AdamW(3e-3),
                                loss=keras.losses.SparseCategoricalCrossentropy(True), epochs=6)),
    _case("embedding + lstm", "recurrent", "healthy", RNN_HAS,
          lambda: (recurrent("LSTM"), *tokens())),
    _case("embedding + lstm, zero kernels", "recurrent", "zero layer", RNN_HAS,
          lambda: (recurrent("LSTM", zero=True), *tokens())),
    _case("gru, linear head", "recurrent", "inconclusive", (),
          lambda: (recurrent("GRU", head=0), *tokens())),
    _case("gru + relu head", "recurrent", "healthy", RNN_HAS,
          lambda: (recurrent("GRU"), *tokens())),
    _case("gru, zero output", "recurrent", "zero layer", RNN_HAS,
          lambda: (zero_output(recurrent("GRU")), *tokens())),
    _case("subclassed, unbuilt", "subclassed", "inconclusive", RELU,
          lambda: (Subclassed(), *digits())),
    _case("subclassed, unbuilt, SGD fit", "subclassed", "healthy", RELU,
          lambda: fit_monitored(Subclassed(), *digits(), optimizer=keras.optimizers.SGD(0.05),
                                loss=keras.losses.SparseCategoricalCrossentropy(True), epochs=4)),
    _case("subclassed, zero middle layer", "subclassed", "zero layer", RELU,
          lambda: (Subclassed(zero_middle=True), *digits())),
    _case("custom train_step, SGD fit", "custom train_step", "healthy", RELU,
          lambda: fit_monitored(custom_step_model(), *digits(), optimizer=keras.optimizers.SGD(0.05),
                                loss=keras.losses.SparseCategoricalCrossentropy(True), epochs=4)),
    _case("custom train_step, deep sigmoid", "custom train_step", "vanishing", SIGMOID,
          lambda: fit_monitored(custom_step_model("sigmoid", depth=10), *digits(),
                                optimizer=keras.optimizers.SGD(0.05),
                                loss=keras.losses.SparseCategoricalCrossentropy(True), epochs=4)),
    _case("regression mse", "regression", "healthy", RELU,
          lambda: (regression(), *regression_data())),
    _case("regression tanh, N(0, 0.01) init", "regression", "vanishing", TANH,
          lambda: (regression("tanh", big(0.01), depth=6), *regression_data())),
    _case("binary, 1 sigmoid unit", "binary", "healthy", RELU,
          lambda: (binary_classifier(), *binary_data())),
    _case("input_dim after one SGD step, lr 10", "sequential input_dim", "dead units", RELU,
          lambda: (one_huge_step(mlp_input_dim(), *digits()), *digits())),
    _case("binary, bias -100", "binary", "dead units", RELU,
          lambda: (binary_classifier(bias=-100.0), *binary_data())),
    _case("mlp, Adam lr 0.05 fit", "sequential input_dim", "large updates", RELU,
          lambda: fit_monitored(mlp_input_dim(), *digits(), optimizer=keras.optimizers.Adam(0.05),
                                loss=keras.losses.SparseCategoricalCrossentropy(True), epochs=4)),
    _case("saved .keras relu/he", "saved .keras", "healthy", RELU,
          lambda: (reloaded(mlp_input_dim(), ".keras"), *digits())),
    _case("saved .keras N(0, 1)", "saved .keras", "exploding", RELU,
          lambda: (reloaded(mlp_input_dim(depth=8, initializer=big(1.0)), ".keras"), *digits())),
    _case("saved .h5 deep sigmoid", "saved .h5", "vanishing", SIGMOID,
          lambda: (reloaded(mlp_input_dim("sigmoid", 10, "glorot_uniform"), ".h5"), *digits())),
    _case("saved .h5 relu/he", "saved .h5", "healthy", RELU,
          lambda: (reloaded(mlp_input_dim(), ".h5"), *digits())),
)


def kernel_initializers(model):
    """Class names of the kernel and embedding initialisers in ``model``'s configuration (nested
    models and wrapped layers included), read from the config rather than the objects."""
    found = []

    def walk(config):
        if isinstance(config, dict):
            for key, value in config.items():
                if key in ("kernel_initializer", "depthwise_initializer",
                           "embeddings_initializer") and isinstance(value, dict):
                    found.append(value.get("class_name"))
                else:
                    walk(value)
        elif isinstance(config, (list, tuple)):
            for value in config:
                walk(value)

    walk(model.get_config() if model is not None else {})
    return found


#: Initialisers whose scale follows the layer's fan (or keeps norms, Orthogonal).
FAN_SCALED = {"GlorotUniform", "GlorotNormal", "HeUniform", "HeNormal", "LecunUniform",
              "LecunNormal", "VarianceScaling", "Orthogonal"}


def absent_advice(case, diagnosis, model=None):
    """Advice lines that name something the model lacks, or propose adding what it has
    (with ``model``, also initialisation advice for initialisers it already uses)."""
    wrong = []
    initializers = kernel_initializers(model)
    for text in diagnosis.advice:
        lowered = text.lower()
        if "smaller initial weight scale" in lowered and initializers and \
                set(initializers) <= FAN_SCALED:
            wrong.append(text)
        if "he initialisation (kernel_initializer" in lowered and initializers and \
                set(initializers) <= {"HeNormal", "HeUniform"} and "sigmoid" not in case.has \
                and "tanh" not in case.has:
            wrong.append(text)
    for text in diagnosis.advice:
        lowered = text.lower()
        for activation in ("sigmoid", "tanh"):
            if activation in lowered and activation not in case.has:
                wrong.append(text)
        if "simplernn" in lowered and "simple_rnn" not in case.has:
            wrong.append(text)
        if "relu units" in lowered and "relu" not in case.has:
            wrong.append(text)
        if "add batchnormalization" in lowered and case.has & {"batch_norm", "layer_norm"}:
            wrong.append(text)
        if "add residual" in lowered and "residual" in case.has:
            wrong.append(text)
    return list(dict.fromkeys(wrong))
