"""The private Keras and TensorFlow APIs vgrad relies on, one test each.

A Keras or TensorFlow release may rename or drop any of them without notice. When a test
here fails, its message names the API, the vgrad module that needs it and what to do;
pyproject.toml bounds ``keras<4`` so that a new major version is not installed untested.
"""

import inspect

import keras
import numpy as np
import pytest
import tensorflow as tf


def require(condition, api, user, advice):
    """Fail with a message that says which API changed, who needs it and what to do."""
    if not condition:
        pytest.fail(
            f"Keras {keras.__version__} / TensorFlow {tf.__version__}: the private API {api} "
            f"changed. {user} needs it. {advice}",
            pytrace=False,
        )


def parameters(function):
    return list(inspect.signature(function).parameters)


def tiny_functional():
    inputs = keras.Input((3,), name="x")
    hidden = keras.layers.Dense(4, name="dense_1")(inputs)
    hidden = keras.layers.Activation("tanh", name="activation_1")(hidden)
    return keras.Model(inputs, keras.layers.Dense(2, name="logits")(hidden))


def test_functional_run_through_graph():
    api = "Functional._run_through_graph(inputs, operation_fn=...)"
    user = "vgrad._forward.tapped_forward (the pre-activations of every hidden layer)"
    advice = ("Replay the graph another way in vgrad/_forward.py (e.g. iterate model.operations "
              "in topological order), or pin keras below this version in pyproject.toml.")
    model = tiny_functional()
    method = getattr(model, "_run_through_graph", None)
    require(method is not None, api, user, advice)
    require(parameters(method)[:2] == ["inputs", "operation_fn"], api, user, advice)
    visited = []

    def operation_fn(operation):
        def run(*args, **kwargs):
            visited.append(operation.name)
            return operation(*args, **kwargs)

        return run

    x = np.random.default_rng(0).normal(size=(5, 3)).astype("float32")
    replayed = method(x, operation_fn=operation_fn)
    require(visited == ["dense_1", "activation_1", "logits"], api, user, advice)
    np.testing.assert_allclose(keras.tree.flatten(replayed)[0], model(x), rtol=1e-6)


def test_functional_nodes_by_depth():
    api = "Functional._nodes_by_depth"
    user = ("vgrad._forward.check_replayable and vgrad.measurement._replayable (telling a "
            "functional model from a subclassed one)")
    advice = ("Tell them apart another way in those two functions (e.g. isinstance of "
              "keras.src.models.Functional), or pin keras below this version.")

    class Subclassed(keras.Model):
        def __init__(self):
            super().__init__()
            self.dense = keras.layers.Dense(2)

        def call(self, inputs):
            return self.dense(inputs)

    nodes = getattr(tiny_functional(), "_nodes_by_depth", None)
    require(isinstance(nodes, dict) and len(nodes) >= 4, api, user, advice)
    subclassed = Subclassed()
    subclassed(np.zeros((1, 3), "float32"))
    require(not getattr(subclassed, "_nodes_by_depth", None), api, user, advice)


def test_optimizer_var_key():
    api = "Optimizer._var_key(variable)"
    user = "vgrad._optimizer_hook (the column of each variable in the GradientMonitor's records)"
    advice = ("Key variables another way in vgrad/_optimizer_hook.py (e.g. by variable.path), "
              "or pin keras below this version.")
    optimizer = keras.optimizers.SGD()
    method = getattr(optimizer, "_var_key", None)
    require(method is not None and parameters(method) == ["variable"], api, user, advice)
    first, second = keras.Variable(np.zeros(2)), keras.Variable(np.zeros(2))
    keys = [method(first), method(first), method(second)]
    require(keys[0] == keys[1] and keys[0] != keys[2] and len({*keys}) == 2, api, user, advice)


def test_optimizer_trainable_variables():
    api = "Optimizer._trainable_variables"
    user = ("vgrad._optimizer_hook.OptimizerHook._prepare (the variables when "
            "optimizer.apply(grads) is called without them)")
    advice = ("Keep the list from the first apply() call in vgrad/_optimizer_hook.py instead, "
              "or pin keras below this version.")
    variables = [keras.Variable(np.zeros(2)), keras.Variable(np.ones(3))]
    optimizer = keras.optimizers.SGD()
    optimizer.build(variables)
    tracked = getattr(optimizer, "_trainable_variables", None)
    require(isinstance(tracked, list) and [id(v) for v in tracked] == [id(v) for v in variables],
            api, user, advice)


def test_optimizer_updates_go_through_the_instance_assign_methods():
    api = "Optimizer.apply calling self.assign/assign_add/assign_sub (patched on the instance)"
    user = ("vgrad._assign_patch.routed_assigns, used by vgrad._hook_ops.capture_updates and "
            "vgrad._jax_ops.captured_updates (the update ratio of GradientMonitor)")
    advice = ("Compute updates as the difference of the weights before and after apply() in "
              "vgrad/_hook_ops.py and vgrad/_jax_ops.py, or pin keras below this version.")
    variable = keras.Variable(np.ones(2, "float32"))
    optimizer = keras.optimizers.SGD(0.5)
    optimizer.build([variable])
    seen = []
    for name in ("assign", "assign_add", "assign_sub"):
        original = getattr(optimizer, name)
        require(parameters(original) == ["variable", "value"], api, user, advice)

        def wrapper(target, value, name=name, original=original):
            seen.append(name)
            return original(target, value)

        object.__setattr__(optimizer, name, wrapper)
    optimizer.apply([np.ones(2, "float32")], [variable])
    require(seen != [], api, user, advice)
    np.testing.assert_allclose(variable.numpy(), [0.5, 0.5])


def test_layer_flatten_layers():
    api = "Layer._flatten_layers(include_self=..., recursive=...)"
    user = "vgrad._layers._sublayers (the weight layers inside nested layers and models)"
    advice = ("Read sublayers another way in vgrad/_layers.py (e.g. the layer's attributes that "
              "are Layers), or pin keras below this version.")

    class Block(keras.layers.Layer):
        def __init__(self, depth, **kwargs):
            super().__init__(**kwargs)
            self.first = keras.layers.Dense(2, name=f"first_{depth}")
            self.nested = Block(depth + 1, name="nested") if depth == 0 else None

    method = getattr(Block(0), "_flatten_layers", None)
    require(method is not None and parameters(method)[:2] == ["include_self", "recursive"],
            api, user, advice)
    # Direct sublayers only, in creation order (first_1 lies inside "nested").
    names = [layer.name for layer in method(include_self=False, recursive=False)]
    require(names == ["first_0", "nested"], api, user, advice)


def test_tf_function_omit_frequent_tracing_warning():
    api = "tf.function(...)._omit_frequent_tracing_warning"
    user = "vgrad._cache.compile_probe (silencing the retracing warning for per-model probes)"
    advice = ("Drop the attribute in vgrad/_cache.py (the warning comes back, nothing breaks), "
              "or find TensorFlow's new switch for it.")
    function = tf.function(lambda x: x + 1)
    # TensorFlow sets it in Function.__init__ and passes it on when it counts tracings.
    require(getattr(function, "_omit_frequent_tracing_warning", None) is False, api, user, advice)
    source = inspect.getsource(type(function).__call__) + inspect.getsource(type(function))
    require("self._omit_frequent_tracing_warning)" in source, api, user, advice)
