"""LSTMFCNClassifier: the scikit-learn contract on real data, really trained."""

from __future__ import annotations

import numpy as np
import pytest
from sklearn.base import clone
from sklearn.exceptions import DataConversionWarning, NotFittedError

from utils import LSTMFCNClassifier, load_dataset


@pytest.fixture(scope="module")
def raw_italy():
    """ItalyPowerDemand as a practitioner has it: raw values and the file's labels."""
    data = load_dataset("ItalyPowerDemand", normalize="none")
    return (data.X_train[:, 0, :], data.decode_labels(data.y_train),
            data.X_test[:, 0, :], data.decode_labels(data.y_test))


@pytest.fixture(scope="module")
def pickup_cases():
    """PickupGestureWiimoteZ (29-361 steps) as aeon gives unequal lengths: a list of
    (n_channels, n_timepoints_i) arrays."""
    data = load_dataset("PickupGestureWiimoteZ", normalize="none")

    def cases(X, lengths):
        return [X[i, :, : lengths[i]].astype(np.float64) for i in range(len(X))]

    return (cases(data.X_train, data.lengths_train), data.decode_labels(data.y_train),
            cases(data.X_test, data.lengths_test), data.decode_labels(data.y_test))


def test_fit_predict_on_raw_arrays(raw_italy):
    X_train, y_train, X_test, y_test = raw_italy
    classifier = LSTMFCNClassifier(epochs=60, random_state=0)
    assert classifier.fit(X_train, y_train) is classifier
    assert list(classifier.classes_) == sorted(set(y_train))
    assert classifier.normalize_ == "sample"  # "auto" on univariate series
    assert classifier.n_features_in_ == 24 and not classifier.variable_length_
    probabilities = classifier.predict_proba(X_test)
    assert probabilities.shape == (len(X_test), 2)
    np.testing.assert_allclose(probabilities.sum(axis=1), 1.0, rtol=1e-5)
    predictions = classifier.predict(X_test)
    assert set(predictions) <= set(classifier.classes_)  # original labels, not indices
    assert classifier.score(X_test, y_test) >= 0.85
    # parameters are stored unchanged and the estimator clones
    assert clone(classifier).get_params() == classifier.get_params()
    # each case's probabilities do not depend on the batch it is predicted in
    np.testing.assert_allclose(classifier.predict_proba(X_test[7:8]), probabilities[7:8],
                               atol=1e-7)


def test_auto_normalisation_is_none_for_multivariate_series():
    data = load_dataset("BasicMotions", normalize="none")
    classifier = LSTMFCNClassifier(model="mlstmfcn", epochs=2).fit(
        data.X_train, data.decode_labels(data.y_train))
    assert classifier.normalize_ == "none" and classifier.normalize == "auto"
    assert (classifier.n_channels_, classifier.n_timepoints_) == (6, 100)
    assert classifier.n_features_in_ == 600
    with pytest.raises(ValueError, match="X has 1 channels, but LSTMFCNClassifier was fitted "
                                         "on 6"):
        classifier.predict(data.X_test[:, 0, :])


def test_variable_length_series_are_masked(raw_italy):
    X_train, y_train, X_test, _ = raw_italy
    ragged = X_train.copy()
    ragged[::3, 20:] = np.nan  # a third of the series are 4 steps shorter (NaN padding)
    classifier = LSTMFCNClassifier(model="fcn", epochs=3).fit(ragged, y_train)
    assert classifier.variable_length_
    assert len(classifier.model_.inputs) == 2  # series and their true lengths
    short = X_test[:5].copy()
    short[:, 20:] = np.nan
    nan_padded = classifier.predict_proba(short)
    assert np.isfinite(nan_padded).all()
    # a NaN-padded series and the same series given at its true length predict the same
    np.testing.assert_allclose(nan_padded, classifier.predict_proba(short[:, :20]), atol=1e-6)


def test_unequal_length_collection_as_aeon_gives_it(pickup_cases):
    X_train, y_train, X_test, _ = pickup_cases
    assert len({case.shape[1] for case in X_train}) > 10  # really unequal lengths
    classifier = LSTMFCNClassifier(model="lstmfcn", epochs=2).fit(X_train, y_train)
    assert classifier.variable_length_ and classifier.n_timepoints_ == 361
    probabilities = classifier.predict_proba(X_test[:6])
    # the same series NaN-padded into one 3-D array predict the same
    padded = np.full((6, 1, 361), np.nan)
    for i, case in enumerate(X_test[:6]):
        padded[i, :, : case.shape[1]] = case
    np.testing.assert_allclose(classifier.predict_proba(padded), probabilities, atol=1e-6)
    # a series longer than every training series is cut to the training length
    longer = [np.concatenate([X_test[0], X_test[0]], axis=1)]
    assert longer[0].shape[1] > 361
    np.testing.assert_allclose(classifier.predict_proba(longer),
                               classifier.predict_proba([longer[0][:, :361]]), atol=1e-6)
    with pytest.raises(ValueError, match="same number of channels"):
        classifier.predict([X_test[0], np.vstack([X_test[1], X_test[1]])])


def test_class_weight_dict_and_column_vector_y(raw_italy):
    X_train, y_train, X_test, _ = raw_italy
    # almost all the weight on one class: the network learns to predict it everywhere
    heavy = {y_train[0]: 1000.0, [c for c in set(y_train) if c != y_train[0]][0]: 1e-4}
    with pytest.warns(DataConversionWarning, match="column-vector y"):
        classifier = LSTMFCNClassifier(epochs=10, batch_size=16, learning_rate=1e-2,
                                       class_weight=heavy).fit(X_train, y_train.reshape(-1, 1))
    assert classifier.classes_.ndim == 1
    assert np.mean(classifier.predict(X_test) == y_train[0]) > 0.9
    with pytest.raises(ValueError, match="not in class_weight|classes.*are not in"):
        LSTMFCNClassifier(epochs=1, class_weight={"no such label": 2.0}).fit(X_train, y_train)


def test_bad_input_gets_scikit_learn_messages(raw_italy):
    X_train, y_train, _, _ = raw_italy
    with pytest.raises(NotFittedError):
        LSTMFCNClassifier().predict(X_train)
    with pytest.raises(ValueError, match="inconsistent numbers of samples"):
        LSTMFCNClassifier(epochs=1).fit(X_train, y_train[:-1])
    with pytest.raises(ValueError, match="only one class"):
        LSTMFCNClassifier(epochs=1).fit(X_train, np.zeros(len(X_train)))
    with pytest.raises(ValueError, match="Unknown label type"):
        LSTMFCNClassifier(epochs=1).fit(X_train, np.linspace(0, 1, len(X_train)))
    with pytest.raises(ValueError, match="Expected 2D array, got 1D array"):
        LSTMFCNClassifier(epochs=1).fit(X_train[0], y_train[:1])
    with pytest.raises(ValueError, match="infinity"):
        LSTMFCNClassifier(epochs=1).fit(np.where(X_train > 1, np.inf, X_train), y_train)
    with pytest.raises(TypeError, match="[Ss]parse data was passed"):
        from scipy import sparse

        LSTMFCNClassifier(epochs=1).fit(sparse.csr_matrix(X_train), y_train)
    with pytest.raises(ValueError, match="normalize='global' is not valid"):
        LSTMFCNClassifier(epochs=1, normalize="global").fit(X_train, y_train)
    with pytest.raises(ValueError, match="every value is NaN"):
        empty = X_train.copy()
        empty[3] = np.nan
        LSTMFCNClassifier(epochs=1).fit(empty, y_train)
