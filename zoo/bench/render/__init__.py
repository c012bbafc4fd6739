"""One module per leaderboard output format (terminal table, CSV, Markdown, JSON, LaTeX), each
rendering from the column model (`zoo.bench.columns`) and registered in
[`zoo.bench.formats`][zoo.bench.formats] through the ``zoo_register_formats`` hook."""
