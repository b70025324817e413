"""hill_core.loop.drive, the story both the flow and the in-process loop tell, on scripted steps."""

from hill_core.config import Config
from hill_core.loop import GateOutcome, Guidance, drive


class Scripted:
    """Steps whose validation accuracy and gate answers are scripted; records every call."""

    def __init__(self, answers, gaps):
        self.answers = answers  # gate epoch -> (decision, edited[, corrected])
        self.gaps = gaps  # epoch -> guided minus baseline val accuracy when a teacher trained
        self.calls = []

    def train(self, run, first, last, guidance: Guidance):
        self.calls.append(("train", run, first, last, guidance.gate))
        self.labels = getattr(self, "labels", []) + [(run, last, guidance.labels)]
        base = 0.5 + 0.01 * last
        gap = self.gaps.get(last, 0.0) if run == "guided" and guidance.gate is not None else 0.0
        return [
            {"epoch": e, "val_acc": base + (gap if e == last else 0.0)}
            for e in range(first, last + 1)
        ]

    def fork_baseline(self):
        self.calls.append(("fork",))

    def mark(self):
        return "mark"

    def rewind(self, mark):
        self.calls.append(("rewind", mark))

    def gate(self, epoch, progress, guidance):
        self.calls.append(("gate", epoch))
        return GateOutcome(*self.answers[epoch])

    def judged(self, verdict):
        self.calls.append(("judged", verdict.teacher_gate, verdict.action))


def config(**overrides):
    base = {"train.epochs": 6, "hill.gate_epochs": [2, 4], "hill.guard": "revert"}
    return Config().replace(**{**base, **overrides})


def test_the_baseline_forks_at_the_first_gate_and_trains_beside_the_guided_run():
    steps = Scripted({2: ("approve", False), 4: ("approve", False)}, {})
    progress = drive(config(), steps)
    trains = [c[1:4] for c in steps.calls if c[0] == "train"]
    assert trains == [
        ("guided", 1, 2), ("guided", 3, 4), ("baseline", 3, 4), ("guided", 5, 6), ("baseline", 5, 6)
    ]  # fmt: skip
    assert steps.calls.index(("fork",)) < steps.calls.index(("gate", 2))
    assert progress.guided_val == progress.baseline_val  # unedited approvals teach nothing


def test_a_teacher_kept_through_a_skip_is_dropped_not_reinstated_by_a_revert():
    # Gate 2 edits (a small cost, kept); gate 4 skips (the teacher stays); it then costs 3 pp.
    steps = Scripted({2: ("approve", True), 4: ("skip", False)}, {4: -0.005, 6: -0.035})
    tolerant = config(**{"hill.on_skip": "keep", "hill.guard_tolerance": 1.0})
    progress = drive(tolerant, steps)
    assert [(v.teacher_gate, v.gate_epoch, v.action) for v in progress.verdicts] == [
        (2, 2, "keep"), (2, 4, "revert"),
    ]  # fmt: skip
    rewound = steps.calls.index(("rewind", "mark"))
    assert steps.calls[rewound + 1] == ("train", "guided", 5, 6, None)  # plain CE, not gate 2's
    assert progress.last_edit is None


def test_a_stop_ends_both_runs_at_the_gate():
    steps = Scripted({2: ("approve", True), 4: ("stop", False)}, {})
    progress = drive(config(), steps)
    assert max(progress.guided_val) == max(progress.baseline_val) == 4


def test_label_corrections_survive_a_revert_and_reach_the_guided_run_only():
    # gate 2: an edited approval with corrections; its teacher costs 3.5 pp and is reverted,
    # but the retrained segment keeps the corrections; gate 4 skips: they stay in force.
    steps = Scripted({2: ("approve", True, True), 4: ("skip", False, False)}, {4: -0.035})
    drive(config(), steps)
    guided = [(last, labels) for run, last, labels in steps.labels if run == "guided"]
    assert guided == [(2, None), (4, 2), (4, 2), (6, 2)]
    assert all(labels is None for run, _, labels in steps.labels if run == "baseline")
    assert ("judged", 2, "revert") in steps.calls


def test_an_approval_that_undoes_every_correction_clears_them():
    steps = Scripted({2: ("approve", False, True), 4: ("approve", False, False)}, {})
    drive(config(), steps)
    guided = [(last, labels) for run, last, labels in steps.labels if run == "guided"]
    assert guided == [(2, None), (4, 2), (6, None)]
