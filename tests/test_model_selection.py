"""DisjointTaskKFold: cross-validation over tasks with no group or class on both sides."""

import numpy as np
import pytest
from sklearn.datasets import load_digits
from sklearn.model_selection import GridSearchCV, KFold

from sklmeta import MAMLClassifier
from sklmeta.model_selection import DisjointTaskKFold
from sklmeta.tasks import EpisodicTasks, GroupedTasks, SinusoidTasks, TaskBatch


def grouped_batch(n_tasks=40):
    rng = np.random.default_rng(0)
    X = rng.normal(size=(300, 3))
    groups = np.repeat(np.arange(10), 30)
    tasks = GroupedTasks(X, X @ rng.normal(size=3) + groups, groups, k_support=5, k_query=5)
    return tasks.sample(n_tasks, random_state=0)


def test_groups_are_never_on_both_sides_and_every_task_is_tested_once():
    batch = grouped_batch()
    tested = []
    for train, test in DisjointTaskKFold(3, shuffle=True, random_state=0).split(batch):
        assert not set(batch.groups[train]) & set(batch.groups[test])
        assert len(train) + len(test) == len(batch)  # one unit per task: nothing dropped
        tested.extend(test)
    assert sorted(tested) == list(range(len(batch)))
    assert DisjointTaskKFold(4).get_n_splits() == 4


def test_without_shuffle_groups_split_as_group_kfold_does():
    # an independent oracle: scikit-learn's GroupKFold, given the groups by hand
    from sklearn.model_selection import GroupKFold

    rng = np.random.default_rng(1)
    batch = grouped_batch(60)
    uneven = rng.integers(0, 7, size=60) ** 2 % 11  # groups of very unequal sizes
    for groups in (batch.groups, uneven):
        ours = [sorted(test) for _, test in DisjointTaskKFold(3).split(batch, groups=groups)]
        theirs = [sorted(test) for _, test in GroupKFold(3).split(batch.X_support,
                                                                   groups=groups)]
        assert ours == theirs


def test_folds_hold_nearly_equal_numbers_of_tasks():
    batch = grouped_batch(60)
    groups = np.r_[np.zeros(30, int), np.arange(1, 31)]  # one group of 30, 30 of one task
    sizes = [len(test) for _, test in DisjointTaskKFold(3, shuffle=True, random_state=0)
             .split(batch, groups=groups)]
    assert sorted(sizes) == [15, 15, 30]


def test_groups_argument_overrides_the_batch():
    batch = grouped_batch()
    parity = batch.groups % 2
    splits = list(DisjointTaskKFold(2).split(batch, groups=parity))
    for train, test in splits:
        assert len(set(parity[test])) == 1 and not set(parity[train]) & set(parity[test])


def test_episodes_share_no_class_across_a_split():
    X, y = load_digits(return_X_y=True)
    batch = EpisodicTasks(X / 16, y, n_way=2, k_shot=1, k_query=3).sample(300, random_state=0)
    used = 0
    for train, test in DisjointTaskKFold(2).split(batch):
        assert not set(batch.classes[train].ravel()) & set(batch.classes[test].ravel())
        used += len(test)
    # with 2 folds of 5 classes, a 2-way episode lies in one fold with probability 4/9
    assert 0.3 < used / len(batch) < 0.6


def test_episodes_drawn_per_fold_of_classes_are_all_used():
    X, y = load_digits(return_X_y=True)
    tasks = EpisodicTasks(X / 16, y, n_way=2, k_shot=1, k_query=3)
    rest, first = tasks.split([0, 1, 2])
    third, second = rest.split([3, 4, 5])
    parts = [part.sample(10, random_state=i) for i, part in enumerate((first, second, third))]
    batch = TaskBatch.concatenate(parts, groups=[0, 1, 2])
    splits = list(DisjointTaskKFold(3).split(batch))
    assert [len(test) for _, test in splits] == [10, 10, 10]
    for train, test in splits:
        assert not set(batch.classes[train].ravel()) & set(batch.classes[test].ravel())
    # usable as cv= of a meta-level search
    search = GridSearchCV(MAMLClassifier(max_iter=2, device="cpu", random_state=0),
                          {"inner_lr": [0.1, 0.4]}, cv=DisjointTaskKFold(3))
    search.fit(batch)
    assert search.cv_results_["split2_test_score"].shape == (2,)


def test_clear_errors():
    batch = grouped_batch()
    with pytest.raises(ValueError, match="n_splits"):
        DisjointTaskKFold(1)
    with pytest.raises(TypeError, match="splits a TaskBatch"):
        next(DisjointTaskKFold(2).split(list(batch)))
    with pytest.raises(ValueError, match="neither groups nor classes"):
        next(DisjointTaskKFold(2).split(SinusoidTasks().sample(10, random_state=0)))
    with pytest.raises(ValueError, match="at least 12 distinct"):
        next(DisjointTaskKFold(12).split(batch))
    X, y = load_digits(return_X_y=True)
    five_way = EpisodicTasks(X / 16, y, n_way=5, k_shot=1, k_query=1).sample(20, random_state=0)
    with pytest.raises(ValueError, match="per fold of classes"):
        list(DisjointTaskKFold(5).split(five_way))


def test_a_plain_kfold_over_episodes_does_mix_classes():
    # what the splitter prevents
    X, y = load_digits(return_X_y=True)
    batch = EpisodicTasks(X / 16, y, n_way=2, k_shot=1, k_query=3).sample(60, random_state=0)
    train, test = next(KFold(3).split(batch.X_support))
    assert set(batch.classes[train].ravel()) & set(batch.classes[test].ravel())
