"""A notebook, as a script: guide the example network from Python, then compare with its
baseline. Run it from the project root (``python examples/notebook.py``), or paste the cells
into a notebook there.

The network and the data set are named by import path (``examples.tinynet...``), as in a config:
a network defined in a notebook cell cannot be rebuilt by a resume, a replay or a deployment's
worker, so put its factory in a module beside the notebook (docs/python.md).
"""

# %%
import hill

result = hill.run(
    params="examples/tinynet.yaml",  # the example's config; overrides go on top
    overrides={"train.epochs": 4, "hill.gate_epochs": [2]},
    model="examples.tinynet.model:build",  # model.name (the config names it too)
    data="examples.tinynet.data:digit_splits",  # data.name
    autopilot="noedit",  # approve every gate unedited; None: a person answers on the page
)

# %%
print(
    f"{result.name}: test accuracy {result.test_accuracy:.3f}, baseline "
    f"{result.baseline.test_accuracy:.3f} ({result.baseline.name}): {result.delta_pp:+.2f} pp"
)
