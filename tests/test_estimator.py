"""LSTMFCNClassifier: the scikit-learn contract on real data, really trained."""

from __future__ import annotations

import numpy as np
import pytest
from sklearn.base import clone

from utils import ConfigurationError, LSTMFCNClassifier, load_dataset


@pytest.fixture(scope="module")
def raw_italy():
    """ItalyPowerDemand as a practitioner has it: raw values and the file's labels."""
    data = load_dataset("ItalyPowerDemand", normalize="none")
    return (data.X_train[:, 0, :], data.decode_labels(data.y_train),
            data.X_test[:, 0, :], data.decode_labels(data.y_test))


def test_fit_predict_on_raw_arrays(raw_italy):
    X_train, y_train, X_test, y_test = raw_italy
    classifier = LSTMFCNClassifier(epochs=60, random_state=0)
    assert classifier.fit(X_train, y_train) is classifier
    assert list(classifier.classes_) == sorted(set(y_train))
    probabilities = classifier.predict_proba(X_test)
    assert probabilities.shape == (len(X_test), 2)
    np.testing.assert_allclose(probabilities.sum(axis=1), 1.0, rtol=1e-5)
    predictions = classifier.predict(X_test)
    assert set(predictions) <= set(classifier.classes_)  # original labels, not indices
    assert classifier.score(X_test, y_test) >= 0.85
    # parameters are stored unchanged and the estimator clones
    assert clone(classifier).get_params() == classifier.get_params()


def test_variable_length_series_are_masked(raw_italy):
    X_train, y_train, X_test, _ = raw_italy
    ragged = X_train.copy()
    ragged[::3, 20:] = np.nan  # a third of the series are 4 steps shorter (NaN padding)
    classifier = LSTMFCNClassifier(model="fcn", epochs=3).fit(ragged, y_train)
    assert len(classifier.model_.inputs) == 2  # series and their true lengths
    short = X_test[:5].copy()
    short[:, 20:] = np.nan
    nan_padded = classifier.predict_proba(short)
    assert np.isfinite(nan_padded).all()
    # a NaN-padded series and the same series given at its true length predict the same
    np.testing.assert_allclose(nan_padded, classifier.predict_proba(short[:, :20]), atol=1e-6)


def test_bad_input_names_the_argument(raw_italy):
    X_train, y_train, _, _ = raw_italy
    with pytest.raises(ConfigurationError, match="y must have shape"):
        LSTMFCNClassifier(epochs=1).fit(X_train, y_train[:-1])
    with pytest.raises(ConfigurationError, match="single class"):
        LSTMFCNClassifier(epochs=1).fit(X_train, np.zeros(len(X_train)))
    with pytest.raises(ConfigurationError, match="not fitted"):
        LSTMFCNClassifier().predict(X_train)
    with pytest.raises(ConfigurationError, match="X must have shape"):
        LSTMFCNClassifier(epochs=1).fit(X_train[0], y_train[:1])
