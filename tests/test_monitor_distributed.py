"""GradientMonitor under tf.distribute.MirroredStrategy on two logical CPU devices: the
recorded norms are those of the summed gradient the optimizer applies, equal to a
single-device run on the same global batch.

The logical devices must be configured before TensorFlow initialises, so the runs
happen in a fresh Python process."""

import json
import os
import subprocess
import sys
import textwrap

import numpy as np

SCRIPT = textwrap.dedent("""
    import json, os, warnings
    import numpy as np
    import tensorflow as tf
    cpu = tf.config.list_physical_devices("CPU")[0]
    tf.config.set_logical_device_configuration(cpu, [tf.config.LogicalDeviceConfiguration()] * 2)
    import keras, vgrad

    rng = np.random.default_rng(0)
    x = rng.normal(size=(64, 8)).astype("float32")
    y = np.arange(64) % 3

    def run(strategy, weights):
        with strategy.scope():
            model = keras.Sequential([keras.Input((8,)),
                                      keras.layers.Dense(6, activation="tanh", name="hidden"),
                                      keras.layers.Dense(3, name="logits")], name="net")
            if weights is not None:
                model.set_weights(weights)
            model.compile(keras.optimizers.SGD(0.1),
                          keras.losses.SparseCategoricalCrossentropy(from_logits=True))
        initial = model.get_weights()
        monitor = vgrad.GradientMonitor()
        with warnings.catch_warnings():
            warnings.simplefilter("error", RuntimeWarning)  # the monitor must not detach
            model.fit(x, y, batch_size=64, epochs=3, shuffle=False, verbose=0, callbacks=[monitor])
        return initial, {"replicas": strategy.num_replicas_in_sync, "steps": monitor.steps,
                         "loss": monitor.loss, "history": monitor.history,
                         "update_ratio": monitor.update_ratio,
                         "weights": [w.tolist() for w in model.get_weights()]}

    initial, single = run(tf.distribute.get_strategy(), None)
    _, mirrored = run(tf.distribute.MirroredStrategy(["/cpu:0", "/cpu:1"]), initial)
    print("RESULT " + json.dumps({"single": single, "mirrored": mirrored}))
""")


def max_relative_difference(a, b):
    a, b = np.asarray(a, np.float64), np.asarray(b, np.float64)
    return float(np.max(np.abs(a - b) / np.maximum(np.abs(b), 1e-30)))


def test_mirrored_strategy_records_the_norms_of_the_summed_gradient():
    environment = dict(os.environ, TF_CPP_MIN_LOG_LEVEL="2", TF_ENABLE_ONEDNN_OPTS="0")
    completed = subprocess.run([sys.executable, "-c", SCRIPT], capture_output=True, text=True,
                               env=environment, timeout=300)
    lines = [line for line in completed.stdout.splitlines() if line.startswith("RESULT ")]
    assert completed.returncode == 0 and lines, completed.stderr[-3000:]
    result = json.loads(lines[-1][len("RESULT "):])
    single, mirrored = result["single"], result["mirrored"]
    assert (single["replicas"], mirrored["replicas"]) == (1, 2)
    assert mirrored["steps"] == single["steps"] == [0, 1, 2]
    assert list(mirrored["history"]) == list(single["history"])
    differences = {
        "gradient norm": max(max_relative_difference(mirrored["history"][p], single["history"][p])
                             for p in single["history"]),
        "update ratio": max(max_relative_difference(mirrored["update_ratio"][p],
                                                    single["update_ratio"][p])
                            for p in single["update_ratio"] if p.endswith("kernel")),
        "loss": max_relative_difference(mirrored["loss"], single["loss"]),
    }
    print("MirroredStrategy (2 replicas) vs one device, max relative difference:", differences)
    assert all(value < 1e-5 for value in differences.values()), differences
    for monitored, reference in zip(mirrored["weights"], single["weights"]):
        np.testing.assert_allclose(monitored, reference, rtol=1e-5, atol=1e-7)
