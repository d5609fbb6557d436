"""ImageTasks (N-way K-shot image episodes with rotations) and meta-learning on Omniglot.

Episodes are checked on synthetic images that carry their own identity: image ``i``
is blank but for one pixel of value ``i + 1`` at a corner-ish position, so the pixel's
value names the image and its position names the rotation applied to it.
"""

import time
from pathlib import Path

import numpy as np
import pytest
import torch

from sklmeta import MAMLClassifier, ReptileClassifier
from sklmeta import _engine
from sklmeta.networks import Conv4
from sklmeta.tasks import ImageTasks, TaskBatch

OMNIGLOT_DIR = Path(__file__).resolve().parents[2] / "shared" / "data" / "omniglot"
needs_omniglot = pytest.mark.skipif(
    not OMNIGLOT_DIR.is_dir() or not any(OMNIGLOT_DIR.glob("*.zip")),
    reason=f"the small Omniglot zips are not in {OMNIGLOT_DIR} (see DESIGN.md, 'Data in ../shared')",
)

SIDE = 6
MARK = (0, 1)  # position of the identifying pixel in an upright image


def tagged_images(n):
    images = np.zeros((n, SIDE, SIDE), dtype=np.float32)
    images[:, MARK[0], MARK[1]] = np.arange(1, n + 1)
    return images


def decode(x):
    """Image (C, H, W) -> (image id, number of quarter turns)."""
    plane = x[0]
    (r, c), value = np.argwhere(plane)[0], plane.max()
    for turns in range(4):
        probe = np.zeros((SIDE, SIDE))
        probe[MARK] = 1
        if np.rot90(probe, turns)[r, c]:
            return int(value) - 1, turns
    raise AssertionError("no identifying pixel")


@pytest.fixture(scope="module")
def synthetic():
    n_classes, per_class = 12, 8
    y = np.repeat(np.arange(100, 100 + n_classes), per_class)  # labels need not be 0..n-1
    groups = np.array(["abc", "def", "ghi"])[np.arange(n_classes) // 4].repeat(per_class)
    return tagged_images(len(y)), y, groups


def test_episodes_are_valid_with_rotations_as_new_classes(synthetic):
    images, y, groups = synthetic
    tasks = ImageTasks(images, y, groups=groups, n_way=5, k_shot=2, k_query=3)
    assert tasks.n_way == 5 and tasks.n_classes_ == 48 and tasks.image_shape_ == (1, SIDE, SIDE)
    batch = tasks.sample(200, random_state=0)
    assert isinstance(batch, TaskBatch)
    assert batch.X_support.shape == (200, 10, 1, SIDE, SIDE)
    assert batch.X_query.shape == (200, 15, 1, SIDE, SIDE)
    assert batch.X_support.dtype == np.float32 and batch.y_support.dtype == np.int64
    turns_seen, first_label_classes = set(), set()
    for task in batch:
        assert np.array_equal(task.y_support, np.repeat(np.arange(5), 2))
        assert np.array_equal(task.y_query, np.repeat(np.arange(5), 3))
        ids, pool = [], {}
        for X, labels in ((task.X_support, task.y_support), (task.X_query, task.y_query)):
            for x, label in zip(X, labels):
                image, turns = decode(x)
                ids.append((image, turns))
                pool.setdefault(int(label), set()).add((int(y[image]), turns))
        assert len(set(ids)) == 25  # no (image, rotation) twice in an episode
        assert all(len(v) == 1 for v in pool.values())  # one (class, rotation) per label
        assert len({next(iter(v)) for v in pool.values()}) == 5  # five distinct ones
        turns_seen |= {t for v in pool.values() for _, t in v}
        first_label_classes |= pool[0]
    assert turns_seen == {0, 1, 2, 3}
    assert len(first_label_classes) > 20  # labels are shuffled per episode


def test_the_same_character_may_come_in_two_rotations(synthetic):
    images, y, _ = synthetic
    # 3 classes x 4 rotations, 5-way: every episode holds some class twice, rotated
    tasks = ImageTasks(images[: 3 * 8], y[: 3 * 8], n_way=5, k_shot=1, k_query=1)
    for task in tasks.sample(20, random_state=0):
        pairs = {(int(y[i]), t) for i, t in map(decode, task.X_support)}
        assert len(pairs) == 5 and len({c for c, _ in pairs}) <= 3


def test_without_rotation_images_are_returned_as_given(synthetic):
    images, y, _ = synthetic
    tasks = ImageTasks(images, y, n_way=3, k_shot=1, k_query=2, rotations=(0,))
    assert tasks.n_classes_ == 12
    batch = tasks.sample(50, random_state=1)
    for X in (batch.X_support, batch.X_query):
        for x in X.reshape(-1, 1, SIDE, SIDE):
            image, turns = decode(x)
            assert turns == 0 and np.array_equal(x[0], images[image])


def test_sampling_is_deterministic_under_random_state(synthetic):
    images, y, groups = synthetic
    tasks = ImageTasks(images, y, groups=groups, n_way=4, k_shot=1, k_query=2)
    a, b = tasks.sample(16, random_state=7), tasks.sample(16, random_state=7)
    assert all(np.array_equal(u, v) for u, v in zip(a.arrays(), b.arrays()))
    c = tasks.sample(16, random_state=8)
    assert not np.array_equal(a.X_support, c.X_support)
    rng1, rng2 = np.random.default_rng(3), np.random.default_rng(3)
    assert np.array_equal(tasks.sample(4, rng1).X_query, tasks.sample(4, rng2).X_query)
    assert np.array_equal(tasks.sample(4, rng1).X_query, tasks.sample(4, rng2).X_query)
    # a split is reproducible too
    s1 = tasks.split(1, by="group", random_state=0)[1].classes_
    s2 = tasks.split(1, by="group", random_state=0)[1].classes_
    assert np.array_equal(s1, s2)


def test_image_layouts_are_accepted(synthetic):
    images, y, _ = synthetic
    reference = ImageTasks(images, y, n_way=3, k_query=2).sample(5, random_state=0)
    for shaped in (images[:, None], images.reshape(len(images), -1), images.astype(np.float64)):
        batch = ImageTasks(shaped, y, n_way=3, k_query=2).sample(5, random_state=0)
        assert all(np.array_equal(u, v) for u, v in zip(reference.arrays(), batch.arrays()))
    rgb = np.repeat(images[:, None], 3, axis=1)
    assert ImageTasks(rgb, y, n_way=3, k_query=2).sample(2, random_state=0).X_query.shape[2:] == (3, SIDE, SIDE)


def test_uneven_class_sizes(synthetic):
    images, y, _ = synthetic
    keep = np.ones(len(y), bool)
    keep[[0, 1, 2, 9]] = False  # class 100 keeps 5 images, class 101 keeps 7
    tasks = ImageTasks(images[keep], y[keep], n_way=12, k_shot=2, k_query=3, rotations=(0,))
    ids_in_keep = set(np.flatnonzero(keep))
    for task in tasks.sample(30, random_state=0):
        ids = [decode(x)[0] for x in np.concatenate([task.X_support, task.X_query])]
        assert len(set(ids)) == 60 and set(ids) <= ids_in_keep


@pytest.mark.parametrize("by", ["group", "class"])
def test_split_is_disjoint_and_keeps_rotations_on_one_side(synthetic, by):
    images, y, groups = synthetic
    tasks = ImageTasks(images, y, groups=groups, n_way=3, k_shot=1, k_query=1)
    train, test = tasks.split(1 if by == "group" else 0.25, by=by, random_state=0)
    assert set(train.classes_).isdisjoint(test.classes_)
    assert set(train.classes_) | set(test.classes_) == set(np.unique(y))
    assert len(test.classes_) == (4 if by == "group" else 3)
    assert train.n_way == test.n_way == 3 and train.rotations == test.rotations
    assert train.images is tasks.images  # shared, not copied
    if by == "group":
        assert len(test.groups_) == 1 and set(train.groups_).isdisjoint(test.groups_)
    for part in (train, test):
        queries = part.sample(50, random_state=0).X_query.reshape(-1, 1, SIDE, SIDE)
        classes = {int(y[decode(x)[0]]) for x in queries}
        assert classes <= set(part.classes_)


def test_split_by_name_and_subset(synthetic):
    images, y, groups = synthetic
    tasks = ImageTasks(images, y, groups=groups, n_way=3, k_shot=1, k_query=1)
    train, test = tasks.split(["ghi"], by="group")
    assert list(test.groups_) == ["ghi"] and list(test.classes_) == [108, 109, 110, 111]
    train, test = tasks.split([100, 105], by="class")
    assert list(test.classes_) == [100, 105] and len(train.classes_) == 10
    wide = test.subset(n_way=4, rotations=(0, 180))
    assert wide.n_classes_ == 4 and wide.n_way == 4 and train.n_way == 3
    small = tasks.subset(groups=["abc", "def"], rotations=(0,), n_way=2, k_shot=3)
    assert list(small.classes_) == list(range(100, 108)) and small.k_shot == 3
    assert tasks.subset([101, 102], n_way=2).n_classes_ == 8


@pytest.mark.parametrize(
    "kwargs, error, match",
    [
        ({"n_way": 1}, ValueError, "n_way"),
        ({"n_way": 2.0}, TypeError, "n_way"),
        ({"k_shot": 0}, ValueError, "k_shot"),
        ({"k_query": True}, TypeError, "k_query"),
        ({"k_shot": 5, "k_query": 5}, ValueError, "k_shot \\+ k_query"),
        ({"n_way": 49}, ValueError, "n_way=49"),
        ({"rotations": (0, 45)}, ValueError, "multiples of 90"),
        ({"rotations": (0, 360)}, ValueError, "distinct"),
        ({"rotations": ()}, ValueError, "at least one"),
        ({"classes": [100, 999]}, ValueError, "999"),
        ({"groups": np.arange(5)}, ValueError, "groups"),
        ({"y": np.zeros((96, 2))}, ValueError, "1-D"),
        ({"y": np.zeros(10)}, ValueError, "same number"),
        ({"images": np.zeros((96, 5))}, ValueError, "not square"),
        ({"images": np.zeros((96, 2, 2, 2, 2))}, ValueError, "images must have shape"),
        ({"images": np.full((96, 6, 6), np.nan)}, ValueError, "NaN"),
        ({"images": np.zeros((96, 4, 6)), "rotations": (0, 90)}, ValueError, "square"),
    ],
)
def test_bad_arguments_name_the_argument(synthetic, kwargs, error, match):
    images, y, groups = synthetic
    params = {"images": images, "y": y, "groups": groups, "k_query": 1, **kwargs}
    with pytest.raises(error, match=match):
        ImageTasks(params.pop("images"), params.pop("y"), **params)


def test_bad_split_and_subset_arguments(synthetic):
    images, y, groups = synthetic
    tasks = ImageTasks(images, y, groups=groups, n_way=3, k_query=1)
    with pytest.raises(ValueError, match="by must be"):
        tasks.split(by="alphabet")
    with pytest.raises(ValueError, match="test_size"):
        tasks.split(3, by="group")  # would leave no training group
    with pytest.raises(ValueError, match="test_size"):
        tasks.split(1.5)
    with pytest.raises(ValueError, match="xyz"):
        tasks.split(["xyz"])
    with pytest.raises(ValueError, match="groups"):
        ImageTasks(images, y, n_way=3, k_query=1).split(1, by="group")
    with pytest.raises(TypeError, match="n_shots"):
        tasks.subset(n_shots=2)
    with pytest.raises(ValueError, match="not among"):
        tasks.split([100], by="class")[0].subset([100])
    # classes spanning groups
    bad = groups.copy()
    bad[0] = "def"
    with pytest.raises(ValueError, match="one group"):
        ImageTasks(images, y, groups=bad, k_query=1)
    with pytest.raises(ValueError, match="n_tasks"):
        tasks.sample(0)


# --------------------------------------------------------------------- on Omniglot
@pytest.fixture(scope="module")
def omniglot():
    from sklmeta.datasets import load_omniglot

    return load_omniglot(OMNIGLOT_DIR)


@pytest.fixture
def one_thread():
    """Conv4 steps are small: one thread is as fast as two on an idle 2-core machine
    and many times faster on a busy one (spinning OpenMP threads)."""
    old = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        yield
    finally:
        torch.set_num_threads(old)


@needs_omniglot
def test_omniglot_alphabet_split(omniglot):
    tasks = ImageTasks(omniglot.images, omniglot.target, groups=omniglot.alphabet)
    assert tasks.n_classes_ == 242 * 4
    train, test = tasks.split(3, by="group", random_state=0)
    names = omniglot.alphabet_names
    assert set(names[train.groups_]).isdisjoint(names[test.groups_])
    assert len(train.classes_) + len(test.classes_) == 242
    batch = train.sample(32, random_state=0)
    assert batch.X_support.shape == (32, 5, 1, 28, 28) and batch.X_query.shape == (32, 75, 1, 28, 28)
    assert 0 <= batch.X_query.min() and batch.X_query.max() <= 1


@needs_omniglot
def test_sampling_costs_little_next_to_a_conv4_meta_iteration(omniglot, one_thread):
    """A ratio measured in one process, not a timed assertion: sampling 32 episodes
    must cost far less than the engine's work on even one of them."""
    tasks = ImageTasks(omniglot.images, omniglot.target, n_way=5, k_shot=1, k_query=15)
    rng = np.random.default_rng(0)
    sampling = []
    for _ in range(20):
        start = time.perf_counter()
        tasks.sample(32, rng)
        sampling.append(time.perf_counter() - start)
    clf = MAMLClassifier(meta_batch_size=1, max_iter=4, device="cpu", random_state=0)
    clf.meta_fit(tasks)
    one_task = np.diff(clf.meta_history_["wall_time"]).min()  # one task, second order
    assert np.median(sampling) < 0.25 * one_task


@needs_omniglot
def test_conv4_meta_gradient_on_omniglot_vmap_matches_loop(omniglot, float64):
    """The default network's BatchNorm (current-batch statistics, primitive ops) gives
    the same second-order meta-gradient vectorised and looped, on real episodes."""
    tasks = ImageTasks(omniglot.images, omniglot.target, n_way=3, k_shot=1, k_query=2)
    batch = tasks.sample(3, random_state=0)
    torch.manual_seed(0)
    net = Conv4(1, 3, image_size=28, n_filters=4).double()
    params = {k: v.detach() for k, v in net.named_parameters()}
    tensors = tuple(torch.as_tensor(np.asarray(a)) for a in batch.arrays())
    tensors = (tensors[0].double(), tensors[1], tensors[2].double(), tensors[3])
    loss = _engine.make_loss(net, torch.nn.functional.cross_entropy)
    config = _engine.InnerLoop(0.4, 2)
    g_vmap, l_vmap, _ = _engine.maml_meta_gradient(loss, params, {}, tensors, config, "vmap")
    g_loop, l_loop, _ = _engine.maml_meta_gradient(loss, params, {}, tensors, config, "loop")
    torch.testing.assert_close(l_vmap, l_loop)
    for k in params:
        torch.testing.assert_close(g_vmap[k], g_loop[k], rtol=1e-9, atol=1e-11)


@needs_omniglot
def test_a_prediction_does_not_depend_on_the_other_images_by_default(omniglot, one_thread):
    """Default: BatchNorm normalises query images with the support set's statistics, so
    an image gets the same prediction alone or in any batch. The reference MAML
    convention (``batch_norm_stats="transductive"``) stays available and is not."""
    tasks = ImageTasks(omniglot.images, omniglot.target, n_way=5, k_shot=1, k_query=3)
    clf = MAMLClassifier(meta_batch_size=2, max_iter=2, device="cpu", random_state=0)
    task = tasks.sample(1, random_state=0)[0]
    clf.meta_fit(tasks).adapt(task.X_support, task.y_support)
    assert type(clf.module_).__name__ == "Conv4" and clf.n_way_ == 5
    X = task.X_query
    in_batch = clf.predict_proba(X)
    reversed_batch = clf.predict_proba(X[::-1])[::-1]
    alone = np.concatenate([clf.predict_proba(X[i : i + 1]) for i in range(len(X))])
    # float32 images, float32 network: equal up to float32 rounding of the conv kernels
    np.testing.assert_allclose(alone, in_batch, rtol=1e-4, atol=1e-6)
    np.testing.assert_allclose(reversed_batch, in_batch, rtol=1e-4, atol=1e-6)
    clf.set_params(batch_norm_stats="transductive")
    alone = clf.predict_proba(X[:1])
    in_batch = clf.predict_proba(X)[:1]
    assert not np.allclose(alone, in_batch, atol=1e-2)


@needs_omniglot
@pytest.mark.parametrize("first_order", [False, True])
def test_maml_adapts_to_images_in_every_layout(omniglot, one_thread, first_order):
    tasks = ImageTasks(omniglot.images, omniglot.target, n_way=5, k_shot=1, k_query=1)
    clf = MAMLClassifier(first_order=first_order, meta_batch_size=2, max_iter=3, device="cpu",
                         random_state=0).meta_fit(tasks)
    assert clf.input_shape_ == (1, 28, 28) and clf.strategy_ == "loop"
    rows = np.flatnonzero(omniglot.target < 5)  # 5 characters x 20 drawings
    support = rows[::20]
    X, y = omniglot.images, omniglot.target_names[omniglot.target]
    probas = []
    for shaped in (X, X[:, None], X.reshape(len(X), -1)):
        clf.adapt(shaped[support], y[support])
        probas.append(clf.predict_proba(shaped[rows]))
    assert list(clf.classes_) == sorted(set(y[support]))
    for p in probas[1:]:
        np.testing.assert_allclose(probas[0], p, rtol=1e-5, atol=1e-6)


def _accuracy(clf, episodes):
    return float(np.mean([clf.adapt(t.X_support, t.y_support).score(t.X_query, t.y_query)
                          for t in episodes]))


@needs_omniglot
@pytest.mark.slow
def test_maml_learns_omniglot_5_way_1_shot_on_held_out_alphabets(omniglot, one_thread):
    tasks = ImageTasks(omniglot.images, omniglot.target, groups=omniglot.alphabet,
                       n_way=5, k_shot=1, k_query=1)
    train, test = tasks.split(3, by="group", random_state=0)
    episodes = test.subset(k_query=5, rotations=(0,)).sample(100, random_state=1)
    params = dict(inner_lr=0.4, inner_steps=1, meta_batch_size=4, device="cpu", random_state=0)
    untrained = MAMLClassifier(max_iter=1, meta_lr=1e-12, **params).meta_fit(train)
    maml = MAMLClassifier(max_iter=60, **params).meta_fit(train)
    acc, base = _accuracy(maml, episodes), _accuracy(untrained, episodes)
    # measured: MAML ~0.6 after 60 iterations of 4 tasks, untrained ~0.3, chance 0.2
    assert acc > 0.4
    assert acc > base + 0.15


@needs_omniglot
@pytest.mark.slow
def test_reptile_meta_trains_on_omniglot(omniglot, one_thread):
    tasks = ImageTasks(omniglot.images, omniglot.target, groups=omniglot.alphabet,
                       n_way=5, k_shot=1, k_query=1)
    train, test = tasks.split(3, by="group", random_state=0)
    episodes = test.subset(k_query=5, rotations=(0,)).sample(100, random_state=1)
    reptile = ReptileClassifier(inner_lr=0.1, inner_steps=5, adapt_steps=10, meta_batch_size=4,
                                max_iter=30, device="cpu", random_state=0).meta_fit(train)
    assert reptile.n_iter_ == 30 and np.isfinite(reptile.meta_history_["meta_loss"]).all()
    # far above chance (0.2); much of it is the 10 adaptation steps themselves
    assert _accuracy(reptile, episodes) > 0.5


def test_episodes_record_the_class_behind_each_label(synthetic):
    images, y, groups = synthetic
    tasks = ImageTasks(images, y, groups=groups, n_way=5, k_shot=2, k_query=3)
    batch = tasks.sample(50, random_state=1)
    assert batch.classes.shape == (50, 5)
    for task, classes in zip(batch, batch.classes):
        for x, label in zip(task.X_support, task.y_support):
            image, _ = decode(x)
            assert y[image] == classes[label]  # a rotated copy comes from its class
    assert batch[[3, 7]].classes.tolist() == batch.classes[[3, 7]].tolist()
    train, test = tasks.split(["ghi"])
    assert set(test.sample(20, random_state=0).classes.ravel()) <= set(test.classes_)
