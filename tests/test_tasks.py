import numpy as np
import pytest
from sklearn.datasets import load_digits

from sklmeta.tasks import EpisodicTasks, GroupedTasks, SinusoidTasks, Task, TaskBatch, TaskSequence


def test_sinusoid_shapes_ranges_and_determinism():
    tasks = SinusoidTasks(k_support=5, k_query=7)
    batch = tasks.sample(100, random_state=0)
    assert batch.X_support.shape == (100, 5, 1) and batch.y_support.shape == (100, 5)
    assert batch.X_query.shape == (100, 7, 1) and batch.y_query.shape == (100, 7)
    assert batch.X_support.dtype == np.float32
    assert np.all(np.abs(batch.X_support) <= 5) and np.all(np.abs(batch.y_query) <= 5)
    again = tasks.sample(100, random_state=0)
    assert all(np.array_equal(a, b) for a, b in zip(batch.arrays(), again.arrays()))
    other = tasks.sample(100, random_state=1)
    assert not np.array_equal(batch.X_support, other.X_support)


def test_sinusoid_targets_follow_a_sine_of_the_task():
    tasks = SinusoidTasks(k_support=20, k_query=20)
    rng = np.random.default_rng(3)
    amplitude, phase = tasks.sample_functions(2, random_state=np.random.default_rng(3))
    batch = tasks.sample(2, random_state=rng)
    # same generator state -> same functions; y must equal A sin(x - phase)
    np.testing.assert_allclose(
        batch.y_support, amplitude[:, None] * np.sin(batch.X_support[..., 0] - phase[:, None]),
        rtol=1e-5, atol=1e-5,
    )
    assert np.all((amplitude >= 0.1) & (amplitude <= 5)) and np.all((phase >= 0) & (phase <= np.pi))


@pytest.mark.parametrize("waveform", ["square", "sawtooth"])
def test_other_wave_families(waveform):
    tasks = SinusoidTasks(waveform=waveform, amplitude_range=(2.0, 2.0), phase_range=(0.0, 0.0))
    x = np.linspace(-5, 5, 1001)
    y = tasks.wave(x, 2.0, 0.0)
    assert y.max() <= 2.0 + 1e-12 and y.min() >= -2.0 - 1e-12
    if waveform == "square":
        assert set(np.unique(np.round(y, 6))) <= {-2.0, 0.0, 2.0}
    else:  # rises linearly: positive slope almost everywhere
        assert np.mean(np.diff(y) > 0) > 0.95


@pytest.mark.parametrize(
    "kwargs, match",
    [({"k_support": 0}, "k_support"), ({"k_query": 2.5}, "k_query"),
     ({"waveform": "triangle"}, "waveform"), ({"x_range": (5, -5)}, "x_range")],
)
def test_sinusoid_bad_arguments(kwargs, match):
    with pytest.raises(ValueError, match=match):
        SinusoidTasks(**kwargs)


def test_episodic_tasks_are_valid_n_way_k_shot_episodes():
    rng = np.random.default_rng(0)
    y = rng.integers(0, 10, size=400)
    X = np.column_stack([np.arange(400), rng.normal(size=400)])  # column 0: row id
    tasks = EpisodicTasks(X, y, n_way=4, k_shot=3, k_query=5)
    batch = tasks.sample(50, random_state=0)
    assert batch.X_support.shape == (50, 12, 2) and batch.X_query.shape == (50, 20, 2)
    first_class = set()
    for task in batch:
        assert sorted(np.bincount(task.y_support)) == [3] * 4
        assert sorted(np.bincount(task.y_query)) == [5] * 4
        s_rows = task.X_support[:, 0].astype(int)
        q_rows = task.X_query[:, 0].astype(int)
        assert len(set(s_rows) | set(q_rows)) == 32  # no example used twice
        # each episode label is one original class; the 4 classes are distinct
        mapping = {}
        for rows, labels in ((s_rows, task.y_support), (q_rows, task.y_query)):
            for r, lab in zip(rows, labels):
                mapping.setdefault(int(lab), set()).add(int(y[r]))
        assert all(len(v) == 1 for v in mapping.values())
        assert len({next(iter(v)) for v in mapping.values()}) == 4
        first_class |= mapping[0]
    # labels are permuted per episode: label 0 is not always the same class
    assert len(first_class) > 3


def test_episodic_tasks_work_on_real_digits():
    X, y = load_digits(return_X_y=True)
    batch = EpisodicTasks(X / 16, y, n_way=5, k_shot=1, k_query=3).sample(4, random_state=1)
    assert batch.X_support.shape == (4, 5, 64) and batch.y_query.dtype == np.int64


def test_episodic_tasks_errors_and_warnings():
    X = np.random.default_rng(0).normal(size=(30, 2))
    y = np.repeat([0, 1, 2], 10)
    with pytest.raises(ValueError, match="n_way"):
        EpisodicTasks(X, y, n_way=4, k_shot=1, k_query=1)
    with pytest.raises(ValueError, match="examples per class"):
        EpisodicTasks(X, y, n_way=3, k_shot=5, k_query=6)
    with pytest.raises(ValueError, match="same number"):
        EpisodicTasks(X, y[:-1], n_way=2)
    X_nan = X.copy()
    X_nan[0, 0] = np.nan
    with pytest.raises(ValueError, match="NaN"):
        EpisodicTasks(X_nan, y, n_way=2)
    y_small = np.array([0] * 10 + [1] * 10 + [2] * 3 + [0] * 7)
    with pytest.warns(UserWarning, match="left out"):
        tasks = EpisodicTasks(X, y_small, n_way=2, k_shot=2, k_query=2)
    assert list(tasks.classes_) == [0, 1]


def test_grouped_tasks_one_group_per_task():
    rng = np.random.default_rng(0)
    groups = np.repeat(np.arange(6), 25)
    X = rng.normal(size=(150, 3))
    y = groups.astype(float)  # target identifies the group
    tasks = GroupedTasks(X, y, groups, k_support=4, k_query=6)
    batch = tasks.sample(6, random_state=0)
    for task in batch:
        values = np.unique(np.concatenate([task.y_support, task.y_query]))
        assert len(values) == 1  # all rows of a task come from one group
    assert len({t.y_support[0] for t in batch}) == 6  # no group repeats when n_tasks <= groups
    task = tasks.task(3, random_state=0)
    assert task.X_support.shape == (4, 3) and task.X_query.shape == (21, 3)
    with pytest.raises(ValueError, match="group"):
        tasks.task(99)
    with pytest.raises(ValueError, match="same number of rows"):
        GroupedTasks(X, y[:-1], groups)


def test_task_batch_is_a_sequence_and_task_sequence_samples_it():
    batch = SinusoidTasks(k_support=3, k_query=4).sample(10, random_state=0)
    assert len(batch) == 10 and isinstance(batch[2], Task)
    assert len(batch[2:5]) == 3 and isinstance(batch[[0, 1]], TaskBatch)
    restacked = TaskBatch.stack(list(batch))
    assert np.array_equal(restacked.X_query, batch.X_query)
    seq = TaskSequence(list(batch))
    sub = seq.sample(4, random_state=0)
    assert len(sub) == 4 and len(seq.sample(40, random_state=0)) == 10
    ragged = [batch[0], Task(np.zeros((5, 1)), np.zeros(5), np.zeros((4, 1)), np.zeros(4))]
    with pytest.raises(ValueError, match="same X_support shape"):
        TaskBatch.stack(ragged)
    with pytest.raises(ValueError, match="number of tasks"):
        TaskBatch(np.zeros((2, 3, 1)), np.zeros((3, 3)), np.zeros((2, 4, 1)), np.zeros((2, 4)))


def grouped_panel():
    rng = np.random.default_rng(0)
    X = rng.normal(size=(300, 3))
    groups = np.repeat(np.arange(10), 30)
    return GroupedTasks(X, X @ rng.normal(size=3) + groups, groups, k_support=5, k_query=5)


def test_task_batches_remember_their_groups_through_indexing():
    tasks = grouped_panel()
    batch = tasks.sample(8, random_state=0)
    group_of_row = {tuple(x): g for x, g in zip(tasks.X, np.repeat(np.arange(10), 30))}
    for task, group in zip(batch, batch.groups):  # each task's rows are its group's
        assert {group_of_row[tuple(x)] for x in np.r_[task.X_support, task.X_query]} == {group}
    assert batch[[1, 3]].groups.tolist() == batch.groups[[1, 3]].tolist()
    assert batch[2:5].groups.tolist() == batch.groups[2:5].tolist()
    with pytest.raises(ValueError, match="one group per task"):
        TaskBatch(*batch.arrays(), groups=np.zeros(3))


def test_grouped_tasks_split_by_group():
    tasks = grouped_panel()
    train, test = tasks.split(0.3, random_state=0)
    assert len(test.groups_) == 3 and len(train.groups_) == 7
    assert not set(train.groups_) & set(test.groups_)
    assert set(test.sample(50, random_state=1).groups) <= set(test.groups_)
    train, test = tasks.split([2, 5])
    assert test.groups_.tolist() == [2, 5]
    assert set(train.sample(40, random_state=0).groups) <= set(range(10)) - {2, 5}
    for bad in (1.5, 10, [11]):
        with pytest.raises(ValueError, match="test_size"):
            tasks.split(bad)


def test_group_aware_cross_validation_keeps_groups_apart():
    from sklearn.model_selection import GroupKFold

    batch = grouped_panel().sample(30, random_state=0)
    for train, test in GroupKFold(3).split(batch, groups=batch.groups):
        assert not set(batch.groups[train]) & set(batch.groups[test])


def digit_episodes(**params):
    X, y = load_digits(return_X_y=True)
    return EpisodicTasks(X / 16, y, **{"n_way": 3, "k_shot": 2, "k_query": 4, **params})


def test_episodes_record_the_class_behind_each_label():
    X, y = load_digits(return_X_y=True)
    tasks = digit_episodes()
    batch = tasks.sample(30, random_state=0)
    assert batch.classes.shape == (30, 3)
    row_class = {tuple(x): c for x, c in zip(X / 16, y)}
    for task, classes in zip(batch, batch.classes):
        assert len(set(classes)) == 3
        for x, label in zip(np.r_[task.X_support, task.X_query], np.r_[task.y_support,
                                                                       task.y_query]):
            assert row_class[tuple(x.astype(np.float64))] == classes[label]
    assert batch[2:4].classes.tolist() == batch.classes[2:4].tolist()
    with pytest.raises(ValueError, match="one row of classes per task"):
        TaskBatch(*batch.arrays(), classes=np.zeros(30))


def test_episodic_tasks_split_by_class():
    tasks = digit_episodes()
    train, test = tasks.split(0.3, random_state=0)
    assert len(test.classes_) == 3 and len(train.classes_) == 7
    assert not set(train.classes_) & set(test.classes_)
    assert set(test.sample(40, random_state=1).classes.ravel()) == set(test.classes_)
    assert set(train.sample(40, random_state=1).classes.ravel()) <= set(train.classes_)
    train, test = tasks.split([0, 5, 9])
    assert test.classes_.tolist() == [0, 5, 9]
    for bad, message in [(2, "fewer than n_way"), (8, "fewer than n_way"), ([11], "unknown"),
                         (1.5, "test_size"), (True, "test_size"), (np.True_, "test_size")]:
        with pytest.raises(ValueError, match=message):
            tasks.split(bad)
    # a 0-d array is a number, as a numpy integer is
    assert len(tasks.split(np.array(3), random_state=0)[1].classes_) == 3
    assert len(tasks.split(np.int64(3), random_state=0)[1].classes_) == 3


def test_concatenate_keeps_or_sets_groups_and_classes():
    tasks = digit_episodes()
    a, b = tasks.sample(2, random_state=0), tasks.sample(3, random_state=1)
    batch = TaskBatch.concatenate([a, b], groups=["x", "y"])
    assert len(batch) == 5 and batch.groups.tolist() == ["x", "x", "y", "y", "y"]
    assert np.array_equal(batch.X_query[2:], b.X_query)
    assert np.array_equal(batch.classes, np.r_[a.classes, b.classes])
    panel = grouped_panel()
    kept = TaskBatch.concatenate([panel.sample(2, random_state=0), panel.sample(2, random_state=1)])
    assert kept.groups.shape == (4,) and kept.classes is None
    with pytest.raises(ValueError, match="same X_support shape"):
        TaskBatch.concatenate([a, digit_episodes(k_shot=1).sample(2, random_state=0)])
    with pytest.raises(ValueError, match="one group per batch"):
        TaskBatch.concatenate([a, b], groups=[1])
