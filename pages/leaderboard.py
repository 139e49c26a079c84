"""Leaderboard: every run, best first."""

import streamlit as st

from fmnist.leaderboard import leaderboard_table
from fmnist.ui import TRAIN_PAGE, get_store

st.title("Leaderboard")
runs = get_store().list_runs()
if not runs:
    st.info("No runs yet. Train your first model on the Build & Train page: pick a preset and press **Start training**.")
    st.page_link(TRAIN_PAGE, label="Build & Train", icon=":material/model_training:")
else:
    st.dataframe(
        leaderboard_table(runs), hide_index=True, width="stretch",
        column_config={
            "test accuracy": st.column_config.NumberColumn(format="%.4f"),
            "test loss": st.column_config.NumberColumn(format="%.4f"),
            "best val accuracy": st.column_config.NumberColumn(format="%.4f"),
            "train time (s)": st.column_config.NumberColumn(format="%.1f"),
            "samples/s": st.column_config.NumberColumn(format="%.0f"),
            "params": st.column_config.NumberColumn(format="localized"),
        },
    )
