"""Long runs: checkpoints that survive a crash, early stopping, continuing (issue 11)."""

import os
import pathlib
import subprocess
import sys
import warnings

import numpy as np
import pytest
import torch

import sklmeta
from sklmeta import (
    MAMLClassifier,
    MAMLPlusPlusRegressor,
    MAMLRegressor,
    MetaSGDRegressor,
    PretrainedRegressor,
    ReptileRegressor,
)
from sklmeta import _checkpoint
from sklmeta._early_stopping import validation_split
from sklmeta.tasks import EpisodicTasks, SinusoidTasks
from sklmeta.tasks._base import TaskSequence

SCRIPTS = pathlib.Path(__file__).parent / "scripts"
sys.path.insert(0, str(SCRIPTS))
from killed_meta_fit import make as make_killed  # noqa: E402


@pytest.fixture(scope="module")
def sinusoid():
    return SinusoidTasks(k_support=5, k_query=5)


def quick(cls, **kwargs):
    params = dict(max_iter=30, meta_batch_size=4, device="cpu", random_state=0,
                  hidden_layer_sizes=(16, 16))
    if cls is ReptileRegressor:
        params["meta_step_size_final"] = 0.0  # a schedule over the call: resumed exactly
    return cls(**{**params, **kwargs})


def assert_same_run(a, b):
    assert a.n_iter_ == b.n_iter_
    assert a.meta_params_.keys() == b.meta_params_.keys()
    for k, v in a.meta_params_.items():
        assert torch.equal(v, b.meta_params_[k]), k
    for k in ("meta_loss", "init_grad_norm"):
        np.testing.assert_array_equal(a.meta_history_[k], b.meta_history_[k])


class Crash(Exception):
    pass


def crash_after_checkpoint(monkeypatch, n_iter):
    """Make meta_fit die right after writing the checkpoint of iteration ``n_iter``."""
    write = _checkpoint.write

    def writing_then_crashing(path, payload):
        write(path, payload)
        if payload["n_iter"] == n_iter:
            raise Crash

    monkeypatch.setattr(_checkpoint, "write", writing_then_crashing)


# ---------------------------------------------------------------- checkpoints
@pytest.mark.parametrize("cls", [MAMLRegressor, MAMLPlusPlusRegressor, MetaSGDRegressor,
                                 ReptileRegressor, PretrainedRegressor])
def test_a_run_resumed_from_its_checkpoint_ends_as_an_uninterrupted_one(
        cls, sinusoid, tmp_path, monkeypatch):
    whole = quick(cls).meta_fit(sinusoid)
    path = tmp_path / "run.ckpt"
    crash_after_checkpoint(monkeypatch, 14)
    with pytest.raises(Crash):
        quick(cls, checkpoint_path=path, checkpoint_every=7).meta_fit(sinusoid)
    monkeypatch.undo()
    assert torch.load(path, weights_only=True)["n_iter"] == 14
    # the same script, rerun: a fresh estimator with warm_start resumes from the file
    resumed = quick(cls, checkpoint_path=path, checkpoint_every=7, warm_start=True)
    assert_same_run(resumed.meta_fit(sinusoid), whole)
    np.testing.assert_array_equal(resumed.meta_history_["meta_loss"],
                                  whole.meta_history_["meta_loss"])


def test_a_process_killed_by_sigkill_resumes_bit_for_bit(tmp_path):
    """A real crash: SIGKILL in the middle of the run, nothing cleaned up."""
    path = tmp_path / "run.ckpt"
    # draw 1 is the validation batch, draw k + 1 the batch of iteration k: killed while
    # drawing iteration 27's batch, the last checkpoint is iteration 20's
    proc = subprocess.run([sys.executable, str(SCRIPTS / "killed_meta_fit.py"), str(path),
                           "28", "MAMLRegressor"], capture_output=True, text=True)
    assert proc.returncode == -9, proc.stderr
    assert torch.load(path, weights_only=True)["n_iter"] == 20
    assert [p.name for p in tmp_path.iterdir()] == ["run.ckpt"]  # no temporary left
    tasks = SinusoidTasks(k_support=5, k_query=5)
    resumed = make_killed("MAMLRegressor", checkpoint_path=path, warm_start=True,
                          checkpoint_every=10).meta_fit(tasks)
    whole = make_killed("MAMLRegressor").meta_fit(tasks)
    assert_same_run(resumed, whole)
    np.testing.assert_array_equal(resumed.meta_history_["validation_score"],
                                  whole.meta_history_["validation_score"])


def test_checkpoint_holds_plain_data_and_tensors_only(sinusoid, tmp_path):
    path = tmp_path / "run.ckpt"
    est = quick(MetaSGDRegressor, checkpoint_path=path, max_iter=5).meta_fit(sinusoid)
    payload = torch.load(path, weights_only=True)  # no pickled code
    assert payload["format"] == _checkpoint.FORMAT and payload["n_iter"] == 5
    assert payload["call"] == {"start": 0, "max_iter": 5, "finished": True}
    assert set(payload["meta_params"]) == set(est.meta_params_) | {
        f"inner_lr:{k}" for k in est.inner_lrs_}
    assert payload["optimizer"]["state"]  # Adam's moments
    assert payload["history"]["meta_loss"].shape == (5,)
    assert payload["rng"]["bit_generator"] == "PCG64"


def test_a_failed_write_leaves_the_previous_checkpoint_whole(sinusoid, tmp_path, monkeypatch):
    path = tmp_path / "run.ckpt"
    quick(MAMLRegressor, checkpoint_path=path, max_iter=4).meta_fit(sinusoid)
    before = path.read_bytes()
    save = torch.save

    def failing_save(obj, f, *args, **kwargs):
        save(obj, f, *args, **kwargs)
        f.truncate(10)  # half-written
        raise OSError("disk full")

    monkeypatch.setattr(torch, "save", failing_save)
    with pytest.raises(OSError, match="disk full"), pytest.warns(UserWarning, match="exists"):
        quick(MAMLRegressor, checkpoint_path=path, max_iter=4).meta_fit(sinusoid)
    assert path.read_bytes() == before
    assert [p.name for p in tmp_path.iterdir()] == ["run.ckpt"]


def test_a_finished_checkpoint_continues_like_a_warm_start(sinusoid, tmp_path):
    path = tmp_path / "run.ckpt"
    quick(MAMLRegressor, checkpoint_path=path, max_iter=10).meta_fit(sinusoid)
    resumed = quick(MAMLRegressor, checkpoint_path=path, max_iter=10, warm_start=True)
    resumed.meta_fit(sinusoid)
    in_memory = quick(MAMLRegressor, max_iter=10).meta_fit(sinusoid)
    in_memory.set_params(warm_start=True).meta_fit(sinusoid)
    assert resumed.n_iter_ == 20
    assert_same_run(resumed, in_memory)


@pytest.mark.parametrize("params", [
    {}, {"early_stopping": True, "validation_every": 5, "n_validation_tasks": 5,
         "n_iter_no_change": 100, "meta_lr": 0.05}])
def test_an_interrupted_run_writes_its_checkpoint_and_a_rerun_finishes_it(
        sinusoid, tmp_path, monkeypatch, params):
    path = tmp_path / "run.ckpt"
    whole = quick(MAMLRegressor, max_iter=20, **params).meta_fit(sinusoid)
    calls = {"n": 0}
    sample = SinusoidTasks.sample

    def interrupting(self, *args, **kwargs):
        calls["n"] += 1
        if calls["n"] == 13:  # drawing the batch of iteration 13
            raise KeyboardInterrupt
        return sample(self, *args, **kwargs)

    monkeypatch.setattr(SinusoidTasks, "sample", interrupting)
    with pytest.warns(UserWarning, match="rerun the script with warm_start=True"):
        quick(MAMLRegressor, max_iter=20, checkpoint_path=path,
              checkpoint_every=100, **params).meta_fit(sinusoid)
    monkeypatch.undo()
    payload = torch.load(path, weights_only=True)
    # where training stood (not the best initialisation so far), to resume from
    # (drawing the validation tasks was the first draw)
    assert payload["n_iter"] == (11 if params else 12) and not payload["call"]["finished"]
    resumed = quick(MAMLRegressor, max_iter=20, checkpoint_path=path, warm_start=True,
                    **params)
    assert_same_run(resumed.meta_fit(sinusoid), whole)


def test_a_classifier_resumes_from_its_checkpoint(tmp_path, monkeypatch):
    from sklearn.datasets import load_digits

    X, y = load_digits(return_X_y=True)
    tasks = EpisodicTasks(X[y < 6] / 16, y[y < 6], n_way=3, k_shot=2, k_query=3)
    whole = quick(MAMLClassifier, max_iter=12).meta_fit(tasks)
    path = tmp_path / "run.ckpt"
    crash_after_checkpoint(monkeypatch, 5)
    with pytest.raises(Crash):
        quick(MAMLClassifier, max_iter=12, checkpoint_path=path, checkpoint_every=5
              ).meta_fit(tasks)
    monkeypatch.undo()
    resumed = quick(MAMLClassifier, max_iter=12, checkpoint_path=path, warm_start=True)
    assert_same_run(resumed.meta_fit(tasks), whole)
    assert resumed.n_way_ == 3


def test_a_checkpoint_of_another_configuration_is_refused_naming_what_differs(
        sinusoid, tmp_path):
    path = tmp_path / "run.ckpt"
    quick(MAMLRegressor, checkpoint_path=path, max_iter=3).meta_fit(sinusoid)
    with pytest.raises(ValueError, match="written by MAMLRegressor, not ReptileRegressor"):
        quick(ReptileRegressor, checkpoint_path=path, warm_start=True).meta_fit(sinusoid)
    with pytest.raises(ValueError, match=r"inner_lr=0.01 there, 0.05 here"):
        quick(MAMLRegressor, checkpoint_path=path, warm_start=True,
              inner_lr=0.05).meta_fit(sinusoid)
    with pytest.raises(ValueError, match="hidden_layer_sizes"):
        quick(MAMLRegressor, checkpoint_path=path, warm_start=True,
              hidden_layer_sizes=(8,)).meta_fit(sinusoid)
    wider = torch.nn.Sequential(torch.nn.Linear(1, 32), torch.nn.ReLU(), torch.nn.Linear(32, 1))
    with pytest.raises(ValueError, match=r"0.weight: \(16, 1\) there, \(32, 1\) here"):
        quick(MAMLRegressor, module=wider, checkpoint_path=path, warm_start=True
              ).meta_fit(sinusoid)
    with pytest.raises(ValueError, match="input shape and outputs"):
        quick(MAMLRegressor, checkpoint_path=path, warm_start=True).meta_fit(
            [_two_outputs(t) for t in sinusoid.sample(8, random_state=0)])
    # what may change: max_iter, verbose, device, strategy, checkpoint_every
    quick(MAMLRegressor, checkpoint_path=path, warm_start=True, max_iter=2, verbose=0,
          strategy="loop", checkpoint_every=1).meta_fit(sinusoid)


def _two_outputs(task):
    from sklmeta.tasks import Task

    return Task(task.X_support, np.c_[task.y_support, task.y_support], task.X_query,
                np.c_[task.y_query, task.y_query])


def test_a_damaged_checkpoint_is_refused_and_nothing_is_run(sinusoid, tmp_path):
    path = tmp_path / "run.ckpt"
    path.write_bytes(b"not a checkpoint")
    with pytest.raises(ValueError, match="not a readable sklmeta checkpoint"):
        quick(MAMLRegressor, checkpoint_path=path, warm_start=True).meta_fit(sinusoid)
    torch.save({"weights": torch.zeros(2)}, path)
    with pytest.raises(ValueError, match="not a checkpoint written by sklmeta"):
        quick(MAMLRegressor, checkpoint_path=path, warm_start=True).meta_fit(sinusoid)


def test_starting_afresh_over_a_checkpoint_warns(sinusoid, tmp_path):
    path = tmp_path / "run.ckpt"
    quick(MAMLRegressor, checkpoint_path=path, max_iter=3).meta_fit(sinusoid)
    with pytest.warns(UserWarning, match="exists and warm_start=False"):
        quick(MAMLRegressor, checkpoint_path=path, max_iter=2).meta_fit(sinusoid)
    assert torch.load(path, weights_only=True)["n_iter"] == 2


def test_checkpoint_path_in_a_missing_folder_is_an_error(sinusoid, tmp_path):
    with pytest.raises(ValueError, match="checkpoint_path=.*does not exist"):
        quick(MAMLRegressor, checkpoint_path=tmp_path / "no" / "run.ckpt").meta_fit(sinusoid)
    with pytest.raises(ValueError, match="is a folder"):
        quick(MAMLRegressor, checkpoint_path=tmp_path).meta_fit(sinusoid)


# ---------------------------------------------------------------- early stopping
def test_early_stopping_stops_after_n_iter_no_change_validations(sinusoid):
    # a meta learning rate of ~0 leaves the score where it is: no validation improves
    est = quick(MAMLRegressor, meta_lr=1e-30, max_iter=1000, early_stopping=True,
                validation_every=5, n_iter_no_change=3, n_validation_tasks=10)
    est.meta_fit(sinusoid)
    assert est.n_iter_ == 5 * (1 + 3)  # the first validation sets the best, 3 do not improve
    assert est.best_iter_ == 5
    scores = est.meta_history_["validation_score"]
    assert scores.shape == (20,) and np.isfinite(scores[4::5]).all()
    assert np.isnan(np.delete(scores, np.s_[4::5])).all()


def test_early_stopping_keeps_the_best_initialisation(sinusoid):
    est = quick(MAMLRegressor, max_iter=60, early_stopping=True, validation_every=10,
                n_iter_no_change=100, n_validation_tasks=20, meta_lr=0.05)
    est.meta_fit(sinusoid)
    scores = est.meta_history_["validation_score"]
    assert est.best_validation_score_ == np.nanmax(scores)
    assert est.best_iter_ == 10 * (np.nanargmax(scores[9::10]) + 1)
    # validation tasks are drawn with a seed of their own: the meta-batches are those of
    # a run without validation, so the kept initialisation is that run's at best_iter_
    reference = quick(MAMLRegressor, max_iter=est.best_iter_, meta_lr=0.05).meta_fit(sinusoid)
    for k, v in reference.meta_params_.items():
        assert torch.equal(est.meta_params_[k], v), k
    # and the recorded score is the estimator's score on the validation tasks
    validation = sinusoid.sample(20, random_state=np.random.default_rng(est._validation_seed))
    assert est.score(validation) == pytest.approx(est.best_validation_score_, rel=1e-6)


def test_validation_fraction_sets_tasks_aside(sinusoid):
    tasks = sinusoid.sample(30, random_state=0)
    est = quick(MAMLRegressor, validation_fraction=0.2)
    train, validation = validation_split(TaskSequence(tasks), None, est, seed=0)
    assert len(train.tasks) == 24 and len(validation) == 6
    X_train = {float(x) for x in train.tasks.X_support[:, 0, 0]}
    X_val = {float(x) for x in validation.X_support[:, 0, 0]}
    assert not X_train & X_val and len(X_train | X_val) == 30
    est.set_params(early_stopping=True, max_iter=20, validation_every=10).meta_fit(tasks)
    assert np.isfinite(est.meta_history_["validation_score"][[9, 19]]).all()
    with pytest.raises(ValueError, match="validation_fraction=0.9 of 2 tasks leaves no task"):
        quick(MAMLRegressor, early_stopping=True, validation_fraction=0.9).meta_fit(
            sinusoid.sample(2, random_state=0))


def test_validation_tasks_are_scored_without_early_stopping(sinusoid):
    validation = sinusoid.sample(10, random_state=5)
    est = quick(MAMLRegressor, max_iter=20, validation_every=10)
    est.meta_fit(sinusoid, validation_tasks=validation)
    assert est.n_iter_ == 20 and not hasattr(est, "best_iter_")
    assert est.meta_history_["validation_score"][19] == pytest.approx(
        est.score(validation), rel=1e-6)
    # a later call without validation pads the record with NaN
    est.set_params(warm_start=True, max_iter=5).meta_fit(sinusoid)
    assert est.meta_history_["validation_score"].shape == (25,)
    assert np.isnan(est.meta_history_["validation_score"][20:]).all()
    with pytest.raises(ValueError, match="validation tasks' X_support examples have shape"):
        quick(MAMLRegressor).meta_fit(sinusoid, validation_tasks=[_wide(t) for t in validation])


def _wide(task):
    from sklmeta.tasks import Task

    return Task(np.c_[task.X_support, task.X_support], task.y_support,
                np.c_[task.X_query, task.X_query], task.y_query)


def test_early_stopping_parameters_are_validated(sinusoid):
    for bad in ({"validation_fraction": 1.0}, {"n_iter_no_change": 0}, {"tol": -1.0},
                {"validation_every": 0}, {"checkpoint_every": 0}):
        name = next(iter(bad))
        with pytest.raises(ValueError, match=name):
            quick(MAMLRegressor, **bad).meta_fit(sinusoid)


def test_resume_with_early_stopping_is_exact(sinusoid, tmp_path, monkeypatch):
    params = dict(max_iter=40, early_stopping=True, validation_every=5, n_iter_no_change=2,
                  n_validation_tasks=10, meta_lr=0.05)
    whole = quick(MAMLRegressor, **params).meta_fit(sinusoid)
    path = tmp_path / "run.ckpt"
    crash_after_checkpoint(monkeypatch, 10)
    with pytest.raises(Crash):
        quick(MAMLRegressor, checkpoint_path=path, checkpoint_every=5, **params
              ).meta_fit(sinusoid)
    monkeypatch.undo()
    resumed = quick(MAMLRegressor, checkpoint_path=path, warm_start=True, **params)
    assert_same_run(resumed.meta_fit(sinusoid), whole)
    assert (resumed.best_iter_, resumed.best_validation_score_) == (
        whole.best_iter_, whole.best_validation_score_)
