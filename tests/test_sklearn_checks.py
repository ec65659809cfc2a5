"""scikit-learn's estimator checks on default-constructed estimators, with no expected failure.

A 2-D X is (sample, time): univariate sequences. The estimators record its
column count in ``n_features_in_`` and reject a 2-D X with another count, as
the checks expect (the 3-D form and lists of sequences take any length). Its
columns are steps from each sequence's start, so the checks' NaN in column 0
is a missing value: an error by default (``missing="error"``).
"""

import pytest
from sklearn.utils.estimator_checks import parametrize_with_checks

from numlstm import LSTMClassifier, LSTMRegressor

pytestmark = pytest.mark.filterwarnings("ignore::sklearn.exceptions.ConvergenceWarning")


@parametrize_with_checks([LSTMRegressor(), LSTMClassifier()])
def test_sklearn_compatible_estimator(estimator, check):
    check(estimator)
