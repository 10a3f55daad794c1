"""The results layer: per-job records (``records``) -> per-metric tables over the full grid
(``tables``, shaped by ``layout``) -> dataset.nc (``netcdf``); ``infer`` reads a grid back from
a results folder. Kept empty of imports, so a job depends only on the modules it uses."""
