"""The operator's side: ``python -m producer`` (``cli``) submits runs (``submit``), reports them
(``status``), brings failed shards back (``redrive``) and builds catalogs
(``granule_catalog`` offline, ``cmr`` from NASA CMR, with ``regions`` and ``cycles``);
``stack`` is the embedded stack, ``synthetic`` the seeded granule generator, ``demo`` the demo."""

__all__ = [
    "cli",
    "cmr",
    "cycles",
    "demo",
    "granule_catalog",
    "redrive",
    "regions",
    "stack",
    "status",
    "submit",
    "synthetic",
]
