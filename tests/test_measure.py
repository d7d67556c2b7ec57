"""vgrad.measure on models written the way users write them, against a hand-written GradientTape."""

import keras
import numpy as np
import pytest
import tensorflow as tf

import vgrad
from vgrad._cache import MAX_FUNCTIONS_PER_MODEL, cache_size

RNG = np.random.default_rng(0)
NUM = 16


def tape_norms(model, x, y, loss):
    """The reference: {variable path: L2 norm of dLoss/dvariable} from one eager tape."""
    variables = model.trainable_variables
    with tf.GradientTape() as tape:
        value = loss(y, model(x, training=True))
    gradients = tape.gradient(value, variables, unconnected_gradients=tf.UnconnectedGradients.ZERO)
    return float(value), {v.path: float(tf.norm(tf.convert_to_tensor(g))) for v, g in zip(variables, gradients)}


def assert_matches_tape(measurement, model, x, y, loss):
    loss_value, expected = tape_norms(model, x, y, loss)
    assert measurement.loss == pytest.approx(loss_value, rel=1e-5)
    assert list(measurement.variable_norms) == [v.path for v in model.trainable_variables]
    noise = 1e-6 * max(expected.values())  # e.g. the key bias, whose true gradient is 0
    for path, norm in expected.items():
        assert measurement.variable_norms[path] == pytest.approx(norm, rel=1e-4, abs=noise), path
    listed = {path for layer in measurement.weight_layers for path in layer.variables}
    assert listed == set(expected)  # every trainable variable belongs to a listed layer
    for layer in measurement.weight_layers:
        assert np.isfinite(layer.gradient_norm) and layer.gradient_norm > 0, layer.name
        assert any(layer.gradient_norm == pytest.approx(expected[path], rel=1e-4) for path in layer.variables)


def transformer():
    tokens = keras.Input((8,), dtype="int32")
    h = keras.layers.Embedding(50, 16, name="embedding")(tokens)
    attention = keras.layers.MultiHeadAttention(2, 8, name="mha")(h, h)
    h = keras.layers.LayerNormalization(name="norm_1")(keras.layers.Add(name="add_1")([h, attention]))
    mlp = keras.layers.Dense(32, activation="gelu", name="mlp_in")(h)
    mlp = keras.layers.Dense(16, name="mlp_out")(mlp)
    h = keras.layers.LayerNormalization(name="norm_2")(keras.layers.Add(name="add_2")([h, mlp]))
    h = keras.layers.GlobalAveragePooling1D()(h)
    return keras.Model(tokens, keras.layers.Dense(4, name="logits")(h), name="encoder")


def tokens_and_labels(num_classes=4):
    return RNG.integers(0, 50, (NUM, 8)).astype("int32"), RNG.integers(0, num_classes, NUM)


def test_transformer_block_lists_every_weight_layer_in_forward_order():
    model = transformer()
    x, y = tokens_and_labels()
    measurement = vgrad.measure(model, x, y)
    names = [layer.name for layer in measurement.weight_layers]
    assert names == ["embedding", "mha/query", "mha/key", "mha/value", "mha/attention_output",
                     "norm_1", "mlp_in", "mlp_out", "norm_2", "logits"]
    kinds = {layer.name: layer.kind for layer in measurement.weight_layers}
    assert kinds["embedding"] == "embedding" and kinds["mha/key"] == "attention"
    assert kinds["norm_1"] == "normalization" and kinds["mlp_in"] == "dense"
    assert measurement.weight_layers[6].activation == "gelu"
    assert list(measurement.backprop) == ["mlp_in"]
    assert list(measurement.block_backprop) == ["add_1", "add_2"]
    assert all(0 < value < np.inf for value in measurement.block_backprop.values())
    assert measurement.loss_name == "sparse categorical cross-entropy from logits"
    assert measurement.loss_source == "inferred: 4 linear units (layer 'logits') and integer labels"
    loss = keras.losses.SparseCategoricalCrossentropy(from_logits=True)
    assert_matches_tape(measurement, model, x, y, loss)
    text = str(measurement)
    assert "mha/attention_output" in text and "add_2" in text and "gelu" in text


@pytest.mark.parametrize("merge", ["layer", "operator"])
def test_block_backprop_is_the_gradient_at_the_skip_input(merge):
    inputs = keras.Input((6,))
    first = keras.layers.Dense(8, name="stem")
    inner, outer = keras.layers.Dense(8, activation="relu", name="inner"), keras.layers.Dense(8, name="outer")
    head = keras.layers.Dense(3, name="head")
    stem = first(inputs)
    if merge == "layer":
        merged = keras.layers.Add(name="block")([stem, outer(inner(stem))])
    else:  # x + f(x) in the functional API is a keras.ops Add operation, not a layer
        merged = stem + outer(inner(stem))
    model = keras.Model(inputs, head(merged))
    x, y = RNG.normal(size=(NUM, 6)).astype("float32"), RNG.integers(0, 3, NUM)
    with tf.GradientTape() as tape:
        h = first(x)
        value = keras.losses.SparseCategoricalCrossentropy(from_logits=True)(y, head(h + outer(inner(h))))
    expected = float(tf.sqrt(tf.reduce_mean(tf.square(tape.gradient(value, h)))))
    (value,) = vgrad.measure(model, x, y).block_backprop.values()
    assert value == pytest.approx(expected, rel=1e-5)


def test_keras_io_cnn_with_batch_norm_and_softmax_output():
    model = keras.Sequential([
        keras.Input((8, 8, 1)),
        keras.layers.Conv2D(4, 3, activation="relu", name="conv_1"),
        keras.layers.BatchNormalization(name="bn"),
        keras.layers.MaxPooling2D(),
        keras.layers.Conv2D(8, 3, activation="relu", padding="same", name="conv_2"),
        keras.layers.Flatten(),
        keras.layers.Dense(10, activation="softmax", name="out"),
    ])
    x, y = RNG.normal(size=(NUM, 8, 8, 1)).astype("float32"), RNG.integers(0, 10, NUM)
    before = [v.numpy().copy() for v in model.non_trainable_variables]
    measurement = vgrad.measure(model, x, y)
    assert [(layer.name, layer.kind) for layer in measurement.weight_layers] == [
        ("conv_1", "conv"), ("bn", "normalization"), ("conv_2", "conv"), ("out", "dense")]
    assert measurement.loss_name == "sparse categorical cross-entropy"  # softmax: not from logits
    assert list(measurement.backprop) == ["conv_1", "conv_2"]  # the output softmax is not hidden
    for old, variable in zip(before, model.non_trainable_variables):
        np.testing.assert_array_equal(old, variable.numpy())  # BatchNorm statistics restored
    assert_matches_tape(measurement, model, x, y, keras.losses.SparseCategoricalCrossentropy())


def test_embedding_lstm_binary_classifier_infers_binary_cross_entropy():
    model = keras.Sequential([keras.Input((6,), dtype="int32"), keras.layers.Embedding(20, 8, name="emb"),
                              keras.layers.LSTM(8, name="lstm"), keras.layers.Dense(1, activation="sigmoid")])
    x, y = RNG.integers(0, 20, (NUM, 6)), RNG.integers(0, 2, NUM)
    measurement = vgrad.measure(model, x, y)
    assert [layer.kind for layer in measurement.weight_layers] == ["embedding", "recurrent", "dense"]
    assert measurement.loss_name == "binary cross-entropy"
    assert measurement.loss_source.startswith("inferred: 1 sigmoid unit") and "0/1 labels" in measurement.loss_source
    assert not measurement.backprop and "no hidden activation" in measurement.notes[0]
    targets = y.reshape(-1, 1).astype("float32")
    assert_matches_tape(measurement, model, x, targets, keras.losses.BinaryCrossentropy())


def test_gru_and_gradient_norms_view_lists_recurrent_kernel():
    model = keras.Sequential([keras.Input((5, 3)), keras.layers.GRU(6, name="gru"), keras.layers.Dense(3, name="out")])
    x, y = RNG.normal(size=(NUM, 5, 3)).astype("float32"), RNG.integers(0, 3, NUM)
    measurement = vgrad.measure(model, x, y)
    assert_matches_tape(measurement, model, x, y, keras.losses.SparseCategoricalCrossentropy(from_logits=True))
    norms = vgrad.gradient_norms(model, x, y)
    assert list(norms) == ["gru", "out"]
    assert norms["gru"] == measurement.variable_norms[model.get_layer("gru").cell.kernel.path]


class Subclassed(keras.Model):
    def __init__(self):
        super().__init__(name="subclassed")
        self.hidden = keras.layers.Dense(8, activation="tanh", name="hidden")
        self.out = keras.layers.Dense(3, name="out")

    def call(self, x):
        return self.out(self.hidden(x))


def test_unbuilt_subclassed_model_is_built_and_measured():
    model = Subclassed()
    x, y = RNG.normal(size=(NUM, 4)).astype("float32"), RNG.integers(0, 3, NUM)
    measurement = vgrad.measure(model, x, y)
    assert [layer.name for layer in measurement.weight_layers] == ["hidden", "out"]
    assert not measurement.backprop and "subclassed" in measurement.notes[0]
    assert_matches_tape(measurement, model, x, y, keras.losses.SparseCategoricalCrossentropy(from_logits=True))


@pytest.mark.filterwarnings("ignore:Do not pass an `input_shape`")
@pytest.mark.parametrize("first", [
    lambda: keras.layers.Dense(8, input_dim=2, activation="relu"),
    lambda: keras.layers.Dense(8, input_shape=(2,), activation="relu"),
])
def test_keras2_style_sequential_regression_net(first):
    model = keras.Sequential([first(), keras.layers.Dense(1)])
    x = RNG.normal(size=(NUM, 2)).astype("float32")
    y = x @ np.array([1.5, -2.0], "float32") + 0.3
    measurement = vgrad.measure(model, x, y)
    assert measurement.loss_name == "mean squared error"
    assert measurement.loss_source == (f"inferred: 1 linear unit (layer {model.layers[-1].name!r}) "
                                       "and numeric targets")
    assert_matches_tape(measurement, model, x, y.reshape(-1, 1), keras.losses.MeanSquaredError())


def test_nested_model_layers_are_listed():
    inner = keras.Sequential([keras.Input((4,)), keras.layers.Dense(5, activation="relu", name="inner_dense")],
                             name="inner")
    inputs = keras.Input((4,))
    model = keras.Model(inputs, keras.layers.Dense(2, name="head")(inner(inputs)))
    x, y = RNG.normal(size=(NUM, 4)).astype("float32"), RNG.integers(0, 2, NUM)
    measurement = vgrad.measure(model, x, y)
    assert [layer.name for layer in measurement.weight_layers] == ["inner_dense", "head"]
    assert_matches_tape(measurement, model, x, y, keras.losses.SparseCategoricalCrossentropy(from_logits=True))


def regression_net():
    model = keras.Sequential([keras.Input((3,)), keras.layers.Dense(8, activation="tanh"), keras.layers.Dense(1)])
    return model, RNG.normal(size=(NUM, 3)).astype("float32"), RNG.normal(size=NUM).astype("float32")


def test_compiled_regression_loss_is_used():
    model, x, y = regression_net()
    model.compile("sgd", "mse")
    measurement = vgrad.measure(model, x, y)
    assert (measurement.loss_name, measurement.loss_source) == ("mean squared error", "the model's compiled loss")
    assert measurement.loss == pytest.approx(float(np.mean((model(x)[:, 0].numpy() - y) ** 2)), rel=1e-5)
    vgrad.gradient_norms(model, x, y)  # issue 10 item 5: TypeError "integer class labels" before


def test_loss_argument_overrides_and_names_its_source():
    model, x, y = regression_net()
    model.compile("sgd", "mse")
    measurement = vgrad.measure(model, x, y, loss="mean_absolute_error")
    assert measurement.loss_source == "given as loss="
    assert measurement.loss == pytest.approx(float(np.mean(np.abs(model(x)[:, 0].numpy() - y))), rel=1e-5)
    with pytest.raises(ValueError, match="not a Keras loss identifier"):
        vgrad.measure(model, x, y, loss="no_such_loss")
    with pytest.raises(TypeError, match="loss must be None, a Keras loss identifier"):
        vgrad.measure(model, x, y, loss=3)


def test_one_hot_targets_take_categorical_cross_entropy():
    model = vgrad.build_mlp(2, 8, seed=0)
    x, labels = RNG.normal(size=(NUM, 64)).astype("float32"), RNG.integers(0, 10, NUM)
    one_hot = np.eye(10, dtype="float32")[labels]
    measurement = vgrad.measure(model, x, one_hot)
    assert measurement.loss_name == "categorical cross-entropy (one-hot targets) from logits"
    assert measurement.loss == pytest.approx(vgrad.measure(model, x, labels).loss, rel=1e-6)


def test_fresh_loss_objects_do_not_pile_up_compiled_functions():
    model, x, y = regression_net()
    for _ in range(3):  # equal built-in losses share one compiled function
        vgrad.measure(model, x, y, loss=keras.losses.MeanSquaredError())
    assert cache_size(model) == 2  # the output description and one measurement function
    for _ in range(MAX_FUNCTIONS_PER_MODEL + 4):  # a fresh function each call: bounded
        vgrad.measure(model, x, y, loss=lambda t, p: keras.ops.mean(keras.ops.abs(t[:, None] - p)))
    assert cache_size(model) == MAX_FUNCTIONS_PER_MODEL


@pytest.mark.parametrize("argument", ["x", "y"])
@pytest.mark.parametrize("bad", [np.nan, np.inf])
def test_non_finite_data_is_refused_naming_the_argument(argument, bad):
    model, x, y = regression_net()
    (x if argument == "x" else y)[3] = bad
    with pytest.raises(ValueError, match=f"{argument} must be finite"):
        vgrad.measure(model, x, y)


def test_forward_overflow_is_flagged_not_raised():
    huge = keras.initializers.RandomNormal(stddev=1e3, seed=0)
    model = vgrad.build_mlp(12, 16, kernel_initializer=huge, seed=0)
    x, y = RNG.normal(size=(NUM, 64)).astype("float32"), RNG.integers(0, 10, NUM)
    measurement = vgrad.measure(model, x, y)
    assert not measurement.forward_finite and not np.isfinite(measurement.loss)


def test_zero_output_layer_is_reported_and_passes_no_gradient_back():
    model = vgrad.build_mlp(3, 8, activation="relu", seed=0)
    model.get_layer("logits").kernel.assign(np.zeros((8, 10), "float32"))
    x, y = RNG.normal(size=(NUM, 64)).astype("float32"), RNG.integers(0, 10, NUM)
    layers = {layer.name: layer for layer in vgrad.measure(model, x, y).weight_layers}
    assert layers["logits"].zero_weights and layers["logits"].weight_norm == 0
    assert layers["logits"].gradient_norm > 0 and layers["dense_1"].gradient_norm == 0
    assert not layers["dense_1"].zero_weights


def test_bad_arguments_name_what_is_accepted():
    model, x, y = regression_net()
    with pytest.raises(TypeError, match="training must be True or False"):
        vgrad.measure(model, x, y, training="yes")
    with pytest.raises(TypeError, match="model must be a keras.Model"):
        vgrad.measure("model.keras", x, y)
    with pytest.raises(ValueError, match="same number of examples"):
        vgrad.measure(model, x, y[:-1])
    with pytest.raises(TypeError, match="x must be a numeric array"):
        vgrad.measure(model, [["a"] * 3] * NUM, y)


def test_measure_stays_the_function_after_every_module_is_imported():
    import vgrad.diagnosis  # noqa: F401
    import vgrad.measurement  # noqa: F401  a module named "measure" would shadow the function

    model, x, y = regression_net()
    assert callable(vgrad.measure) and vgrad.measure.__module__ == "vgrad.measurement"
    assert isinstance(vgrad.measure(model, x, y), vgrad.Measurement)


def test_freezing_a_layer_changes_what_is_measured():
    model = vgrad.build_mlp(2, 8, seed=0)
    x, y = RNG.normal(size=(NUM, 64)).astype("float32"), RNG.integers(0, 10, NUM)
    assert len(vgrad.measure(model, x, y).variable_norms) == 6
    model.get_layer("dense_1").trainable = False
    measurement = vgrad.measure(model, x, y)
    assert len(measurement.variable_norms) == 4
    assert [layer.name for layer in measurement.weight_layers] == ["dense_2", "logits"]


def test_probes_are_views_of_one_measurement(batch):
    x, y = batch
    model = vgrad.build_mlp(4, 16, activation="tanh", batch_norm=True, seed=0)
    measurement = vgrad.measure(model, x, y)
    assert vgrad.backprop_rms(model, x, y) == measurement.backprop
    kernels = {layer.name: layer.gradient_norm for layer in measurement.weight_layers if layer.kind == "dense"}
    assert vgrad.gradient_norms(model, x, y) == kernels
    stats = vgrad.activation_stats(model, x)  # forward only, same numbers
    assert list(stats) == list(measurement.activations) == ["dense_1", "dense_2", "dense_3", "dense_4"]
    for name, record in stats.items():
        assert record.activation == measurement.activations[name].activation
        np.testing.assert_allclose(
            [record.mean, record.std, record.saturated_fraction],
            [measurement.activations[name].mean, measurement.activations[name].std,
             measurement.activations[name].saturated_fraction], rtol=1e-5, atol=1e-7)


def test_models_with_several_inputs_are_refused_naming_x():
    first, second = keras.Input((3,)), keras.Input((2,))
    merged = keras.layers.Concatenate()([first, second])
    model = keras.Model([first, second], keras.layers.Dense(2)(merged))
    with pytest.raises(ValueError, match="2 inputs; x must be one array"):
        vgrad.measure(model, np.zeros((4, 3)), np.zeros(4, int))


def test_sequence_labels_per_time_step():
    model = keras.Sequential([keras.Input((5, 3)), keras.layers.SimpleRNN(4, return_sequences=True),
                              keras.layers.Dense(6, name="per_step")])
    x, y = RNG.normal(size=(NUM, 5, 3)).astype("float32"), RNG.integers(0, 6, (NUM, 5))
    measurement = vgrad.measure(model, x, y)
    assert measurement.loss_name == "sparse categorical cross-entropy from logits"
    assert_matches_tape(measurement, model, x, y, keras.losses.SparseCategoricalCrossentropy(from_logits=True))


def test_private_keras_apis_that_measure_relies_on_still_exist():
    """Named here so that a Keras release that removes one fails with its name."""
    assert callable(getattr(keras.layers.Layer, "_flatten_layers", None)), "Layer._flatten_layers"
    model = transformer()
    assert callable(getattr(model, "_run_through_graph", None)), "Functional._run_through_graph"
    assert getattr(model, "_nodes_by_depth", None), "Functional._nodes_by_depth"


def test_embedding_gradient_norm_with_repeated_tokens():
    model = keras.Sequential([keras.Input((4,), dtype="int32"), keras.layers.Embedding(1000, 3, name="emb"),
                              keras.layers.Flatten(), keras.layers.Dense(2)])
    x = np.array([[5, 5, 7, 5], [7, 9, 9, 5]] * 4)  # repeats within and across examples
    y = np.array([0, 1] * 4)
    measurement = vgrad.measure(model, x, y)
    assert_matches_tape(measurement, model, x, y, keras.losses.SparseCategoricalCrossentropy(from_logits=True))
    assert isinstance(measurement.loss, float) and all(type(v) is float for v in measurement.variable_norms.values())


class TransformerBlock(keras.layers.Layer):
    """The keras-io text-classification block (without dropout, so a tape can repeat it)."""

    def __init__(self, embed_dim, num_heads, ff_dim, **kwargs):
        super().__init__(**kwargs)
        self.att = keras.layers.MultiHeadAttention(num_heads=num_heads, key_dim=embed_dim)
        self.ffn = keras.Sequential([keras.layers.Dense(ff_dim, activation="relu"), keras.layers.Dense(embed_dim)])
        self.layernorm1 = keras.layers.LayerNormalization(epsilon=1e-6)
        self.layernorm2 = keras.layers.LayerNormalization(epsilon=1e-6)

    def call(self, inputs):
        out1 = self.layernorm1(inputs + self.att(inputs, inputs))
        return self.layernorm2(out1 + self.ffn(out1))


def test_custom_block_layer_and_bidirectional_lstm_are_listed_sublayer_by_sublayer():
    inputs = keras.Input((10,), dtype="int32")
    h = keras.layers.Embedding(100, 8)(inputs)
    h = TransformerBlock(8, 2, 16, name="block")(h)
    h = keras.layers.Bidirectional(keras.layers.LSTM(4), name="bi")(h)
    model = keras.Model(inputs, keras.layers.Dense(2, activation="softmax")(h))
    x, y = RNG.integers(0, 100, (NUM, 10)), RNG.integers(0, 2, NUM)
    measurement = vgrad.measure(model, x, y)
    kinds = [(layer.name.split("/")[0], layer.kind) for layer in measurement.weight_layers]
    assert kinds.count(("block", "attention")) == 4 and kinds.count(("block", "normalization")) == 2
    assert kinds.count(("block", "dense")) == 2 and kinds.count(("bi", "recurrent")) == 2
    assert_matches_tape(measurement, model, x, y, keras.losses.SparseCategoricalCrossentropy())


def test_adding_a_constant_is_not_a_residual_block():
    inputs = keras.Input((6,))
    hidden = keras.layers.Dense(8, activation="tanh", name="hidden")(inputs) + 1.0
    model = keras.Model(inputs, keras.layers.Dense(3)(hidden))
    x, y = RNG.normal(size=(NUM, 6)).astype("float32"), RNG.integers(0, 3, NUM)
    measurement = vgrad.measure(model, x, y)
    assert not measurement.block_backprop and list(measurement.backprop) == ["hidden"]


def test_a_hidden_overflow_hidden_by_dead_units_is_still_a_forward_overflow():
    # Layer 1 overflows to inf; layer 2 maps inf to -inf, which ReLU zeroes, so the loss
    # is a finite ln 3. The forward pass still overflowed, and diagnose must say where.
    model = keras.Sequential([
        keras.Input((4,)),
        keras.layers.Dense(4, activation="relu", name="huge",
                           kernel_initializer=keras.initializers.Constant(1e38)),
        keras.layers.Dense(4, activation="relu", name="negating",
                           kernel_initializer=keras.initializers.Constant(-1.0)),
        keras.layers.Dense(3, name="logits"),
    ])
    x, y = np.full((NUM, 4), 10.0, "float32"), RNG.integers(0, 3, NUM)
    measurement = vgrad.measure(model, x, y)
    assert np.isfinite(measurement.loss) and measurement.loss == pytest.approx(np.log(3))
    assert not measurement.forward_finite
    diagnosis = vgrad.diagnose(model, x, y)
    assert diagnosis.verdict == "exploding" and "activations of huge are inf/nan" in diagnosis.reason
