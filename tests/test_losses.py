"""Loss gradients are the exact derivatives of the loss values (finite differences)."""

from __future__ import annotations

import numpy as np
import pytest

from spacy_senti.models.losses import sigmoid_loss, softmax_loss


def numeric_grad(fn, logits, eps=1e-4):
    grad = np.zeros_like(logits)
    for idx in np.ndindex(*logits.shape):
        plus, minus = logits.copy(), logits.copy()
        plus[idx] += eps
        minus[idx] -= eps
        grad[idx] = (fn(plus) - fn(minus)) / (2 * eps)
    return grad


@pytest.mark.parametrize("gamma", [0.0, 2.0])
@pytest.mark.parametrize("smoothing", [0.0, 0.1])
@pytest.mark.parametrize("weighted", [False, True])
def test_softmax_loss_gradient(gamma, smoothing, weighted):
    rng = np.random.default_rng(0)
    logits = rng.normal(size=(5, 3)).astype("f8")
    targets = np.eye(3)[rng.integers(0, 3, size=5)]
    weights = np.array([0.5, 1.0, 2.0]) if weighted else None

    def fn(z):
        return softmax_loss(np, z, targets, class_weights=weights, gamma=gamma,
                            label_smoothing=smoothing)[0]

    _, grad = softmax_loss(np, logits, targets, class_weights=weights, gamma=gamma,
                           label_smoothing=smoothing)
    np.testing.assert_allclose(grad, numeric_grad(fn, logits), rtol=1e-4, atol=1e-6)


@pytest.mark.parametrize("gamma", [0.0, 2.0])
@pytest.mark.parametrize("weighted", [False, True])
def test_sigmoid_loss_gradient(gamma, weighted):
    rng = np.random.default_rng(1)
    logits = rng.normal(size=(4, 3)).astype("f8")
    targets = (rng.random((4, 3)) > 0.5).astype("f8")
    weights = np.array([1.0, 3.0, 0.5]) if weighted else None

    def fn(z):
        return sigmoid_loss(np, z, targets, pos_weights=weights, gamma=gamma)[0]

    _, grad = sigmoid_loss(np, logits, targets, pos_weights=weights, gamma=gamma)
    np.testing.assert_allclose(grad, numeric_grad(fn, logits), rtol=1e-4, atol=1e-6)


def test_cross_entropy_matches_textbook_value():
    logits = np.array([[2.0, 0.0]])
    loss, _ = softmax_loss(np, logits, np.array([[1.0, 0.0]]))
    assert loss == pytest.approx(np.log(1 + np.exp(-2.0)), rel=1e-6)
    loss, _ = sigmoid_loss(np, np.array([[0.0]]), np.array([[1.0]]))
    assert loss == pytest.approx(np.log(2.0), rel=1e-6)


def test_focal_loss_downweights_easy_examples():
    easy = np.array([[4.0, 0.0]])
    target = np.array([[1.0, 0.0]])
    ce, _ = softmax_loss(np, easy, target)
    focal, _ = softmax_loss(np, easy, target, gamma=2.0)
    assert focal < ce / 50
