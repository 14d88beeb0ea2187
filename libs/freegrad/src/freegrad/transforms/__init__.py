"""The built-in rules; importing this package registers them.

* :mod:`.derivatives` - ``d(F)``, the true derivative of every forward ``F``;
* :mod:`.basic` - rectangular, triangular, scale, clip_norm, noise, centralize;
* :mod:`.jamming` - full_jam, positive_jam, rectangular_jam;
* :mod:`.surrogates` - the surrogate derivatives of spiking-network work.
"""

from . import basic, derivatives, jamming, surrogates

__all__ = ["basic", "derivatives", "jamming", "surrogates"]
