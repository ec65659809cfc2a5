"""Estimator benchmarks: one training epoch and predict.

They skip (NotImplementedError in setup) until ``numlstm.LSTMRegressor`` /
``numlstm.LSTMClassifier`` exist. Data: 512 sequences, 50 steps, 8 features,
hidden_size 64, batch_size 32, Adam, no early stopping; the same workload as
the estimator row of ``compare.py``.
"""

import warnings

from ._common import ThreadGuard, estimator_data, make_estimator, require


class Estimator:
    params = (["regressor", "classifier"], ["lstm", "gru"])
    param_names = ["kind", "cell"]
    timeout = 300

    def setup(self, kind, cell):
        require()
        self.X, self.y = estimator_data(kind)
        self.est = make_estimator(kind, cell)
        self.guard = ThreadGuard()
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            self.est.fit(self.X, self.y)  # compile / load kernels outside the timed region

    def teardown(self, kind, cell):
        guard = getattr(self, "guard", None)
        if guard is not None:
            guard.close()

    def time_fit_one_epoch(self, kind, cell):
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            self.est.fit(self.X, self.y)

    def time_predict(self, kind, cell):
        self.est.predict(self.X)
