"""The Streamlit dashboard: thin page scripts in ``pages/`` over the public API, pure figure builders in
``figures.py`` (data -> plotly Figure) and pure table shaping in ``tables.py``. Only ``loaders.py``, ``state.py``
and the page scripts import streamlit."""
