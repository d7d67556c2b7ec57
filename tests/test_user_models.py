"""vgrad on models written the way users write them, beyond the zoo: nested models,
TimeDistributed, separable convolutions, mixed precision, Dropout, custom weights,
per-output losses, frozen layers, several inputs, token ids, and the advice each gets.

Each test reproduces a defect found by trying vgrad on such a model, against the real
behaviour (no mocks)."""

import numpy as np
import pytest

import keras
from keras import layers

import vgrad
from vgrad import policy
from vgrad._architecture import architecture


def _tiny(seed=1):
    return keras.initializers.RandomNormal(stddev=0.05, seed=seed)


def _sigmoid_stack(depth=10, width=32):
    return [layers.Dense(width, activation="sigmoid", kernel_initializer=_tiny(i), name=f"s{i}")
            for i in range(depth)]


def _compiled(model, optimizer="sgd"):
    model.compile(optimizer, "sparse_categorical_crossentropy")
    return model


# -- activations inside nested models, TimeDistributed and separable convolutions --------


def test_nested_sequential_gets_the_verdict_of_the_same_model_flat(batch):
    x, y = batch
    inputs = keras.Input((64,))
    flat = inputs
    for layer in _sigmoid_stack():
        flat = layer(flat)
    flat_model = _compiled(keras.Model(inputs, layers.Dense(10, activation="softmax")(flat)))
    body = keras.Sequential(_sigmoid_stack(), name="body")
    inputs = keras.Input((64,))
    nested = _compiled(keras.Model(inputs, layers.Dense(10, activation="softmax")(body(inputs))))
    nested.set_weights(flat_model.get_weights())
    flat_diagnosis, nested_diagnosis = vgrad.diagnose(flat_model, x, y), vgrad.diagnose(nested, x, y)
    assert flat_diagnosis.verdict == nested_diagnosis.verdict == "vanishing"
    assert nested_diagnosis.ratio == pytest.approx(flat_diagnosis.ratio, rel=1e-4)
    backprop = vgrad.backprop_rms(nested, x, y)
    assert list(backprop) == [f"s{i}" for i in range(10)]
    assert vgrad.activation_stats(nested, x)["s0"].activation == "sigmoid"


def test_time_distributed_and_separable_convolutions_are_tapped(rng):
    x_seq = rng.normal(size=(16, 5, 6)).astype("float32")
    y = rng.integers(0, 3, size=16)
    inputs = keras.Input((5, 6))
    for outer, inner in (("td1", "a"), ("td2", "b")):
        dense = layers.Dense(8, activation="relu", name=inner)
        inputs_or_hidden = inputs if outer == "td1" else hidden
        hidden = layers.TimeDistributed(dense, name=outer)(inputs_or_hidden)
    model = keras.Model(inputs, layers.Dense(3)(layers.GlobalAveragePooling1D()(hidden)))
    # named as vgrad's weight-layer table names them: outer/inner
    assert list(vgrad.backprop_rms(model, x_seq, y)) == ["td1/a", "td2/b"]
    table = [row.name for row in vgrad.diagnose(model, x_seq, y).layers]
    assert table[:2] == ["td1/a", "td2/b"] and len(table) == 3
    images = rng.normal(size=(16, 8, 8, 1)).astype("float32")
    inputs = keras.Input((8, 8, 1))
    hidden = layers.SeparableConv2D(4, 3, padding="same", activation="relu", name="sep1")(inputs)
    hidden = layers.DepthwiseConv2D(3, padding="same", activation="relu", name="dw")(hidden)
    outputs = layers.Dense(3)(layers.GlobalAveragePooling2D()(hidden))
    model = keras.Model(inputs, outputs)
    diagnosis = vgrad.diagnose(model, images, y)
    assert [row.name for row in diagnosis.layers if row.backprop_rms is not None] == ["sep1", "dw"]
    assert diagnosis.verdict != "inconclusive"


def test_huge_gradients_are_exploding_even_without_two_comparable_points(rng):
    x = rng.normal(size=(32, 8)).astype("float32")
    y = (1e4 * rng.normal(size=(32, 1))).astype("float32")
    big = keras.initializers.RandomNormal(stddev=30.0, seed=0)
    model = keras.Sequential([keras.Input((8,)), layers.Dense(16, kernel_initializer=big),
                              layers.Dense(1, kernel_initializer=big)])
    model.compile("sgd", "mse")
    diagnosis = vgrad.diagnose(model, x, y)
    assert diagnosis.verdict == "exploding", diagnosis
    assert "kernel-gradient norm" in diagnosis.reason


# -- mixed precision ---------------------------------------------------------------------


def test_mixed_precision_model_is_diagnosed(batch):
    x, y = batch
    keras.mixed_precision.set_global_policy("mixed_float16")
    try:
        inputs = keras.Input((64,))
        hidden = layers.Dense(32, activation="relu")(inputs)
        hidden = layers.Dense(32, activation="relu")(hidden)
        logits = layers.Dense(10)(hidden)
        outputs = layers.Activation("softmax", dtype="float32")(logits)
        model = keras.Model(inputs, outputs)
    finally:
        keras.mixed_precision.set_global_policy("float32")
    model.compile("adam", "sparse_categorical_crossentropy")
    assert model.layers[1].compute_dtype == "float16"
    diagnosis = vgrad.diagnose(model, x, y)
    assert diagnosis.verdict == "healthy", diagnosis
    stats = vgrad.activation_stats(model, x)
    assert len(stats) == 2 and all(s.activation == "relu" for s in stats.values())
    assert all(np.isfinite(s.mean) and 0 <= s.dead_fraction <= 1 for s in stats.values())


# -- Dropout: the chance-level check is made on the model's own (inference) loss ----------


def test_dropout_model_is_judged_on_its_inference_loss(digits):
    (x_train, y_train), _ = digits
    keras.utils.set_random_seed(0)
    model = keras.Sequential([keras.Input((64,)), layers.Dense(32, activation="relu"),
                              layers.Dropout(0.5), layers.Dense(10, activation="softmax")])
    model.compile(keras.optimizers.Adam(1e-2), "sparse_categorical_crossentropy")
    model.fit(x_train, y_train, epochs=3, batch_size=64, verbose=0)
    x, y = x_train[:256], y_train[:256]
    diagnosis = vgrad.diagnose(model, x, y)
    evaluated = model.evaluate(x, y, batch_size=256, verbose=0)
    note = next(n for n in diagnosis.notes if "inference mode" in n)
    assert "Dropout" in note and f"{evaluated:.4g}" in note
    assert diagnosis.verdict != "not learning"


def test_monitor_verdict_on_a_dropout_model_says_the_loss_has_dropout_on(batch):
    x, y = batch
    keras.utils.set_random_seed(0)
    model = keras.Sequential([keras.Input((64,)), layers.Dropout(0.95),
                              layers.Dense(16, activation="relu"), layers.Dense(10)])
    model.compile(keras.optimizers.SGD(1e-4),
                  keras.losses.SparseCategoricalCrossentropy(from_logits=True))
    monitor = vgrad.GradientMonitor()
    model.fit(x, y, epochs=6, batch_size=32, verbose=0, callbacks=[monitor])
    diagnosis = vgrad.diagnose(monitor)
    assert diagnosis.verdict == "not learning", diagnosis
    assert any("Dropout" in note and "model.evaluate" in note for note in diagnosis.notes)


# -- the monitor's verdict reads every layer with weights --------------------------------


@keras.saving.register_keras_serializable(package="vgrad_tests")
class Scaled(layers.Layer):
    """A user's layer with a weight of its own name."""

    def build(self, input_shape):
        self.w = self.add_weight(shape=(input_shape[-1],), initializer="ones", name="w")

    def call(self, inputs):
        return inputs * self.w


def test_monitor_verdict_lists_separable_and_custom_weights(rng):
    images = rng.normal(size=(32, 8, 8, 1)).astype("float32")
    y = rng.integers(0, 3, size=32)
    inputs = keras.Input((8, 8, 1))
    hidden = layers.SeparableConv2D(4, 3, padding="same", activation="relu", name="sep")(inputs)
    hidden = Scaled(name="scaled")(layers.GlobalAveragePooling2D()(hidden))
    model = keras.Model(inputs, layers.Dense(3, name="head")(hidden))
    model.compile("sgd", keras.losses.SparseCategoricalCrossentropy(from_logits=True))
    monitor = vgrad.GradientMonitor()
    model.fit(images, y, epochs=2, batch_size=16, verbose=0, callbacks=[monitor])
    names = [row.name for row in vgrad.diagnose(monitor).layers]
    assert names == ["sep/depthwise_kernel", "scaled/w", "head/kernel"]
    kinds = [row.kind for row in vgrad.diagnose(monitor).layers]
    assert kinds == ["conv", "other", "dense"]


# -- losses, inputs, outputs -------------------------------------------------------------


@pytest.mark.parametrize("wrap", [lambda loss: {"out": loss}, lambda loss: [loss]])
def test_one_loss_in_a_dict_or_list_is_that_output_loss(batch, wrap):
    x, y = batch
    model = keras.Sequential([keras.Input((64,)), layers.Dense(16, activation="relu"),
                              layers.Dense(10, activation="softmax", name="out")])
    model.compile("sgd", loss=wrap("sparse_categorical_crossentropy"))
    diagnosis = vgrad.diagnose(model, x, y)
    assert diagnosis.loss_name == "sparse categorical cross-entropy"
    assert diagnosis.loss == pytest.approx(
        float(keras.losses.sparse_categorical_crossentropy(y, model(x)).numpy().mean()), rel=1e-5)


def _two_inputs_two_outputs():
    first, second = keras.Input((64,), name="pixels"), keras.Input((3,), name="meta")
    hidden = layers.Dense(16, activation="relu")(layers.Concatenate()([first, second]))
    return keras.Model([first, second], [layers.Dense(10, name="digit")(hidden),
                                         layers.Dense(1, name="size")(hidden)])


def test_several_inputs_or_outputs_get_a_clear_error(batch):
    x, y = batch
    model = _two_inputs_two_outputs()
    with pytest.raises(ValueError, match="has 2 inputs.*single-input"):
        vgrad.diagnose(model, [x, np.zeros((len(x), 3))], y)
    inputs = keras.Input((64,))
    hidden = layers.Dense(16, activation="relu")(inputs)
    two_outputs = keras.Model(inputs, [layers.Dense(10)(hidden), layers.Dense(1)(hidden)])
    two_outputs.compile("sgd", loss=["sparse_categorical_crossentropy", "mse"])
    with pytest.raises(ValueError, match="has 2 outputs.*single-output"):
        vgrad.diagnose(two_outputs, x, y)


def test_token_ids_beyond_the_embedding_are_refused_by_name(rng):
    model = keras.Sequential([keras.Input((5,), dtype="int32"), layers.Embedding(10, 4, name="emb"),
                              layers.GlobalAveragePooling1D(), layers.Dense(2)])
    y = np.zeros(4, "int64")
    with pytest.raises(ValueError, match=r"token ids from 0 to 12.*'emb'.*0 to 9"):
        vgrad.diagnose(model, np.array([[0, 1, 2, 3, 12]] * 4), y)
    assert vgrad.diagnose(model, np.array([[0, 1, 2, 3, 9]] * 4), y).verdict


def test_frozen_layer_keeps_its_place_in_the_table(batch):
    x, y = batch
    model = keras.Sequential([keras.Input((64,)),
                              layers.Dense(16, activation="relu", name="frozen", trainable=False),
                              layers.Dense(16, activation="relu", name="mid"),
                              layers.Dense(10, name="out")])
    rows = [row.name for row in vgrad.diagnose(model, x, y).layers]
    assert rows == ["frozen", "mid", "out"]


# -- advice names only what the model lacks ----------------------------------------------


def _mlp(initializer, activation="relu"):
    return keras.Sequential([keras.Input((8,)),
                             layers.Dense(8, activation=activation, kernel_initializer=initializer),
                             layers.Dense(8, activation=activation, kernel_initializer=initializer),
                             layers.Dense(2)])


def test_smaller_initialisation_advice_only_for_a_large_fixed_scale():
    smaller = policy.ADVICE["smaller_init"]
    for initializer in ("glorot_uniform", "he_normal", "lecun_normal", "orthogonal",
                        keras.initializers.RandomNormal(stddev=0.05)):
        features = architecture(_mlp(initializer))
        assert features.large_init == frozenset(), initializer
        assert smaller not in policy.choose_advice("exploding", features)
    fixed = architecture(_mlp(keras.initializers.RandomNormal(stddev=1.0)))
    # the two hidden 8x8 kernels: variance 1 > 4 x 2 / 16; the output layer is Glorot
    assert len(fixed.large_init) == 2
    assert smaller in policy.choose_advice("exploding", fixed)
    huge_embedding = keras.Sequential([
        keras.Input((5,), dtype="int32"),
        layers.Embedding(50, 8, embeddings_initializer=keras.initializers.RandomNormal(
            stddev=1e3), name="emb"),
        layers.GlobalAveragePooling1D(), layers.Dense(2, kernel_initializer="glorot_uniform")])
    assert architecture(huge_embedding).large_init == {"emb"}
    wide_conv = keras.Sequential([keras.Input((8, 8, 3)), layers.Conv2D(
        64, 3, activation="relu", kernel_initializer="he_normal")])
    assert architecture(wide_conv).large_init == frozenset()


def test_he_advice_only_for_relu_models_without_he():
    he = policy.ADVICE["he"]
    assert architecture(_mlp("he_normal")).he_init
    assert he not in policy.choose_advice("vanishing", architecture(_mlp("he_normal")))
    assert he in policy.choose_advice("vanishing", architecture(_mlp("glorot_uniform")))
    # sigmoid models are told to move to ReLU with He, whatever they use now
    assert he in policy.choose_advice("vanishing", architecture(_mlp("he_normal", "sigmoid")))


# -- mixed precision under a monitor: the steps the loss scaling skips -------------------


def _mixed_precision_relu(stddev):
    keras.mixed_precision.set_global_policy("mixed_float16")
    try:
        init = keras.initializers.RandomNormal(stddev=stddev, seed=0)
        inputs = keras.Input((64,))
        hidden = inputs
        for _ in range(6):
            hidden = layers.Dense(64, activation="relu", kernel_initializer=init)(hidden)
        outputs = layers.Activation("softmax", dtype="float32")(layers.Dense(10)(hidden))
        model = keras.Model(inputs, outputs)
    finally:
        keras.mixed_precision.set_global_policy("float32")
    model.compile("adam", "sparse_categorical_crossentropy")
    assert type(model.optimizer).__name__ == "LossScaleOptimizer"
    return model


@pytest.mark.parametrize("stddev", [2.0, 0.5])
def test_steps_skipped_by_loss_scaling_are_counted_and_judged(digits, stddev):
    (x_train, y_train), _ = digits
    model = _mixed_precision_relu(stddev)
    monitor = vgrad.GradientMonitor()
    model.fit(x_train[:256], y_train[:256], epochs=1, batch_size=32, verbose=0,
              callbacks=[monitor])
    applied = int(model.optimizer.iterations.numpy())
    assert len(monitor.steps) == applied and monitor.num_skipped == 8 - applied
    assert monitor.num_skipped > 0
    diagnosis = vgrad.diagnose(monitor)
    assert diagnosis.verdict == "exploding", diagnosis
    if applied == 0:  # every step overflowed in float16: nothing recorded, still a verdict
        assert "skipped all 8 steps" in diagnosis.reason
        assert f"{monitor.num_skipped} steps skipped by the loss scaling" in repr(monitor)
    else:
        assert any(f"skipped {monitor.num_skipped} steps" in note for note in diagnosis.notes)


# -- datasets, as fit takes them ---------------------------------------------------------


def test_diagnose_reads_the_first_batch_of_a_dataset(batch):
    import tensorflow as tf

    x, y = batch
    model = keras.Sequential([keras.Input((64,)), layers.Dense(16, activation="relu"),
                              layers.Dense(16, activation="relu"), layers.Dense(10)])
    dataset = tf.data.Dataset.from_tensor_slices((x, y)).batch(32)
    from_dataset, from_arrays = vgrad.diagnose(model, dataset), vgrad.diagnose(model, x[:32], y[:32])
    assert from_dataset.loss == pytest.approx(from_arrays.loss, rel=1e-6)
    assert from_dataset.verdict == from_arrays.verdict

    class Batches(keras.utils.PyDataset):
        def __len__(self):
            return 2

        def __getitem__(self, index):
            return x[32 * index : 32 * (index + 1)], y[32 * index : 32 * (index + 1)]

    assert vgrad.diagnose(model, Batches()).loss == pytest.approx(from_arrays.loss, rel=1e-6)
    with pytest.raises(ValueError, match="hold no targets"):
        vgrad.diagnose(model, tf.data.Dataset.from_tensor_slices(x).batch(32))
    with pytest.raises(ValueError, match="empty dataset"):
        vgrad.diagnose(model, dataset.take(0))
