"""The Streamlit side of the library: what the pages in pages/ share. Each module one job:
`navigation` (the entry and the links between pages), `session` (who is here), `caches` (the store,
the dataset and models, loaded once per server), `activity` (the sidebar's run status), `server`
(the server's set-up). Like the pages, these reach the Keras side only inside the functions that load a model."""
