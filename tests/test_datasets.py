"""The bundled datasets: shapes, known values, coords and attrs, and agreement with statsmodels."""

import numpy as np
import pytest

from numlstm import datasets

# loader, name, length, first time, last time, first value, last value, units
CASES = [
    (datasets.load_sunspots, "sunspots", 309, 1700, 2008, 5.0, 2.9, "1"),
    (datasets.load_nile, "volume", 100, 1871, 1970, 1120.0, 740.0, "1e8 m3"),
    (datasets.load_co2, "co2", 526, np.datetime64("1958-03-01"), np.datetime64("2001-12-01"),
     316.1, 371.02, "ppm"),
    (datasets.load_elnino, "sst", 732, np.datetime64("1950-01-01"), np.datetime64("2010-12-01"),
     23.11, 22.07, "degC"),
]


@pytest.mark.parametrize("load, name, n, first, last, first_value, last_value, units", CASES,
                         ids=[case[1] for case in CASES])
def test_loader(load, name, n, first, last, first_value, last_value, units):
    data = load()
    assert data.name == name and data.dims == ("time",) and data.shape == (n,)
    assert data.dtype == np.float64
    assert data.time.values[0] == first and data.time.values[-1] == last
    assert data.indexes["time"].is_monotonic_increasing and data.indexes["time"].is_unique
    assert data.values[0] == pytest.approx(first_value) and data.values[-1] == pytest.approx(last_value)
    assert data.attrs["units"] == units
    for key in ("long_name", "description", "source", "license"):
        assert data.attrs[key]
    assert "public domain" in data.attrs["license"]
    assert load() is not data and load().identical(data)


def test_yearly_series_have_integer_years():
    for load in (datasets.load_sunspots, datasets.load_nile):
        time = load().time
        assert time.dtype == np.int64 and np.all(np.diff(time.values) == 1)
        assert time.attrs["units"] == "year"


def test_monthly_series_are_contiguous_months():
    for load in (datasets.load_co2, datasets.load_elnino):
        months = load().time.values.astype("datetime64[M]")
        assert np.all(np.diff(months) == np.timedelta64(1, "M"))


def test_co2_gaps_are_nan_and_counted():
    co2 = datasets.load_co2()
    empty = co2.n_weeks.values == 0
    assert np.array_equal(co2.isnull().values, empty)
    assert [str(t)[:7] for t in co2.time.values[empty]] == ["1958-06", "1958-10", "1964-02", "1964-03",
                                                             "1964-04"]
    assert co2.n_weeks.values.max() == 5
    filled = co2.interpolate_na("time")
    assert not filled.isnull().any()


def test_elnino_months_in_order():
    sst = datasets.load_elnino()
    assert float(sst.sel(time="1950-02-01")) == pytest.approx(24.20)
    assert float(sst.sel(time="2010-08-01")) == pytest.approx(19.49)


STATSMODELS = {
    "sunspots": (datasets.load_sunspots, lambda d: d["SUNACTIVITY"]),
    "nile": (datasets.load_nile, lambda d: d["volume"]),
    "elnino": (datasets.load_elnino, lambda d: d.iloc[:, 1:].to_numpy().ravel()),
    "co2": (datasets.load_co2, lambda d: d["co2"].resample("MS").mean()),
}


@pytest.mark.parametrize("name", list(STATSMODELS))
def test_matches_statsmodels(name):
    sm_datasets = pytest.importorskip("statsmodels.datasets")
    load, column = STATSMODELS[name]
    expected = np.asarray(column(getattr(sm_datasets, name).load_pandas().data), dtype=float)
    np.testing.assert_allclose(load().values, expected, rtol=1e-12)
