"""rnnedge-data: the data sets `rnnedge train` bundles (watch, digits, shakespeare, co2; README.md says where each
comes from, how make_*.py converted it, and its licence). They are a distribution of their own, so that rnnedge's
wheel, what a device installs, carries none:

    pip install rnnedge-data            # from a checkout of rnnedge: pip install ./train/bundled

rnnedge.train.data reads them as importlib.resources.files("rnnedge_data") / "watch.npz"; a checkout of rnnedge
without this package installed reads this folder (train/bundled/) directly.
"""
