"""Small public-domain time series that ship with numlstm, as xarray DataArrays.

Nothing is downloaded: the data are CSV files inside the package, taken from
the datasets bundled with statsmodels, which documents each of them as public
domain. Every loader returns a 1-D ``xarray.DataArray`` with a ``time``
dim and coordinate, a ``name``, and ``units``, ``long_name``,
``description``, ``source`` and ``license`` in its ``attrs``.

- ``load_sunspots``: yearly sunspot number, 1700-2008 (309 years);
- ``load_nile``: annual flow of the Nile at Aswan, 1871-1970 (100 years);
- ``load_co2``: monthly mean CO2 at Mauna Loa, 1958-2001 (526 months);
- ``load_elnino``: monthly sea surface temperature, Nino 1+2, 1950-2010 (732 months).

To turn a series into training windows, see ``numlstm.data.sliding_windows``.
"""

from importlib import resources

import numpy as np
import xarray as xr

__all__ = ["load_sunspots", "load_nile", "load_co2", "load_elnino"]

_YEAR = {"long_name": "year", "units": "year"}
_MONTH = {"long_name": "first day of the month"}


def _read_csv(filename, dtype=float):
    """The columns of a bundled CSV file, as a structured ndarray."""
    with resources.files(__name__).joinpath(filename).open("r", encoding="utf-8") as f:
        return np.genfromtxt(f, delimiter=",", names=True, dtype=dtype, encoding="utf-8")


def _series(values, time, time_attrs, name, long_name, units, description, source, statsmodels,
            coords=None):
    """A 1-D DataArray over ``time`` with the attrs every loader gives; ``statsmodels`` names its
    dataset there, whose license text ``license`` quotes."""
    license_text = _LICENSES[statsmodels]
    attrs = {
        "long_name": long_name,
        "units": units,
        "description": description,
        "source": f"{source} Extracted from statsmodels.datasets.{statsmodels}.",
        "license": f"public domain (statsmodels.datasets.{statsmodels}.COPYRIGHT: {license_text!r})",
    }
    return xr.DataArray(np.asarray(values, dtype=np.float64), dims="time", name=name,
                        coords={"time": xr.Variable("time", time, attrs=time_attrs), **(coords or {})},
                        attrs=attrs)


def _yearly(filename, column, **meta):
    """The ``column`` of a bundled CSV file with a ``year`` column, as a yearly series."""
    table = _read_csv(filename)
    return _series(table[column], table["year"].astype(np.int64), _YEAR, column, **meta)


_LICENSES = {  # each statsmodels dataset's COPYRIGHT text
    "sunspots": "This data is public domain.",
    "nile": "This is public domain.",
    "co2": "This is public domain.",
    "elnino": "This data is in the public domain.",
}


def load_sunspots():
    """Yearly mean sunspot number, 1700-2008.

    Returns
    -------
    xarray.DataArray of shape (309,), dtype float64
        Named ``"sunspots"``, dimensionless (``units="1"``), with integer
        years in the ``time`` coordinate.

    Notes
    -----
    From the National Geophysical Data Center (NOAA), as bundled with
    statsmodels (``statsmodels.datasets.sunspots``), whose license text reads
    "This data is public domain." The series shows the roughly 11-year solar
    cycle and is a classic forecasting benchmark.

    Examples
    --------
    >>> from numlstm.datasets import load_sunspots
    >>> spots = load_sunspots()
    >>> int(spots.time[0]), float(spots.sel(time=2008))
    (1700, 2.9)
    """
    return _yearly(
        "sunspots.csv", "sunspots", long_name="yearly mean sunspot number", units="1",
        description="Yearly mean number of sunspots, 1700-2008.",
        source="National Geophysical Data Center, NOAA, "
               "http://www.ngdc.noaa.gov/stp/solar/solarda3.html.",
        statsmodels="sunspots",
    )


def load_nile():
    """Annual flow volume of the Nile at Aswan, 1871-1970.

    Returns
    -------
    xarray.DataArray of shape (100,), dtype float64
        Named ``"volume"``, in units of 10^8 cubic metres, with integer years
        in the ``time`` coordinate.

    Notes
    -----
    The series has a well-known change point near 1898 (Cobb 1978, "The
    Problem of the Nile: Conditional Solution to a Changepoint Problem",
    Biometrika 65(2), 243-251). As bundled with statsmodels
    (``statsmodels.datasets.nile``), whose license text reads "This is public
    domain."

    Examples
    --------
    >>> from numlstm.datasets import load_nile
    >>> nile = load_nile()
    >>> int(nile.time[0]), float(nile[0])
    (1871, 1120.0)
    """
    return _yearly(
        "nile.csv", "volume", long_name="annual flow volume of the Nile at Aswan", units="1e8 m3",
        description="Annual discharge of the Nile measured at Aswan, 1871-1970.",
        source="Cobb, G. W. (1978), Biometrika 65(2), 243-251.", statsmodels="nile",
    )


def load_co2():
    """Monthly mean atmospheric CO2 at Mauna Loa Observatory, March 1958 to December 2001.

    Returns
    -------
    xarray.DataArray of shape (526,), dtype float64
        Named ``"co2"``, in ppm (mole fraction, parts per million), with the
        first day of each month (datetime64) in the ``time`` coordinate and
        the number of weekly samples behind each mean in the ``n_weeks``
        coordinate.

    Notes
    -----
    The bundled data are the weekly values of ``statsmodels.datasets.co2``
    (Keeling and Whorf 2004, Scripps Institution of Oceanography), whose
    license text reads "This is public domain." Each month is the mean of
    its weekly samples. Five months have no sample at all (June and October
    1958, February to April 1964) and are NaN, not filled in: estimators
    reject a NaN inside a sequence, so fill them in a way you can defend, for
    example ``co2.interpolate_na("time")``, or cut the series after them.

    Examples
    --------
    >>> from numlstm.datasets import load_co2
    >>> co2 = load_co2()
    >>> co2.shape, int(co2.isnull().sum())
    ((526,), 5)
    """
    table = _read_csv("co2_weekly.csv", dtype=None)
    weekly = xr.DataArray(table["co2"].astype(np.float64), dims="time",
                          coords={"time": table["date"].astype("datetime64[ns]")})
    months = weekly.resample(time="MS")
    means = months.mean()
    return _series(
        means, means.time.values, _MONTH, "co2",
        long_name="monthly mean atmospheric CO2 mole fraction at Mauna Loa", units="ppm",
        description="Monthly means of weekly CO2 samples at Mauna Loa Observatory, Hawaii, "
                    "1958-03 to 2001-12; months without a sample are NaN.",
        source="Keeling, C.D. and T.P. Whorf (2004), Atmospheric CO2 concentrations derived "
               "from flask air samples at sites in the SIO network, Trends: A Compendium of "
               "Data on Global Change, CDIAC, Oak Ridge National Laboratory.",
        statsmodels="co2",
        coords={"n_weeks": ("time", months.count().values.astype(np.int64),
                            {"long_name": "weekly samples averaged"})},
    )


def load_elnino():
    """Monthly mean sea surface temperature in the Nino 1+2 region, 1950-2010.

    Returns
    -------
    xarray.DataArray of shape (732,), dtype float64
        Named ``"sst"``, in degrees Celsius, with the first day of each month
        (datetime64) in the ``time`` coordinate.

    Notes
    -----
    NOAA's ERSST.V3B Nino 1+2 index (eastern tropical Pacific, 0-10S,
    90W-80W), as bundled with statsmodels (``statsmodels.datasets.elnino``),
    whose license text reads "This data is in the public domain."

    No independent labels come with it, so any classification target has to
    be derived from the series itself, and said so. One such task: from the
    twelve months of a year, classify whether the next January-March is
    warmer than usual (an El Nino winter) -- see the example.

    Examples
    --------
    >>> from numlstm.datasets import load_elnino
    >>> sst = load_elnino()
    >>> winter = sst.where(sst.time.dt.month <= 3).groupby("time.year").mean()
    >>> anomaly = winter - winter.mean()
    >>> X = sst.values.reshape(61, 12)[:-1]          # each year's 12 months
    >>> y = (anomaly.values[1:] > 0.5).astype(int)   # a warm next winter?
    >>> X.shape, y.shape
    ((60, 12), (60,))
    """
    table = _read_csv("elnino.csv")
    months = [name for name in table.dtype.names if name != "year"]
    values = np.column_stack([table[m] for m in months]).ravel()
    start = np.datetime64(f"{int(table['year'][0])}-01", "M")
    time = (start + np.arange(values.size)).astype("datetime64[ns]")
    return _series(
        values, time, _MONTH, "sst",
        long_name="monthly mean sea surface temperature, Nino 1+2 region", units="degC",
        description="Monthly mean sea surface temperature of the eastern tropical Pacific "
                    "(Nino 1+2 region: 0-10S, 90W-80W), 1950-2010.",
        source="NOAA National Weather Service, Climate Prediction Center, ERSST.V3B Nino 1+2 "
               "index, http://www.cpc.ncep.noaa.gov/data/indices/.",
        statsmodels="elnino",
    )
