"""Measurements of Fashion-MNIST Studio, outside the library: each module one bench, run through the
command line (`python -m fmnist bench`, `bench --watch`, `bench --cluster`, `bench --time-to-accuracy`, `search --bench`,
`inside-bench`, `photo-bench`) or on its own (`python -m benchmarks.watch_bench`,
`python -m benchmarks.watch_profile`). They print figures; nothing here is asserted. The library
never imports this package at load time: the CLI's commands import a bench once they run it.

`browser` (a Streamlit server and Chromium) and `photo_fixtures` (photo-like pictures) are shared
with the tests, which import them from here.
"""
