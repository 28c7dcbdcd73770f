"""The protocols: base-to-new (`base2new`), cross-dataset and domain generalisation (`transfer`), the
method comparison (`compare`), the ablations (`ablate`), one run (`single`: `dra train` / `dra eval`) and
the demo (`demo`); `experiment` holds what they share. The `protocol` setting takes the paper's three
(`dra.settings.PROTOCOLS`)."""
