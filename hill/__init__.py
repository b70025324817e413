"""hill's Python API, for notebooks and scripts: :func:`run` trains a guided run and its paired
baseline through the same Prefect flow as ``hill run``, and returns their scores and names.

    import hill

    result = hill.run(
        params="params.yaml",
        overrides={"train.epochs": 6},
        autopilot="noedit",  # None: a person answers each gate on its page
        model="mypackage.models:build",  # model.name; model.latent goes in overrides
        data="mypackage.data:splits",  # data.name
    )
    print(result.test_accuracy, result.baseline.test_accuracy, result.delta_pp)

See docs/python.md.
"""

from hill.api import RunResult, run

__all__ = ["RunResult", "run"]
