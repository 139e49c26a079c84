"""Data: what Fashion-MNIST looks like, a few images of each class."""

import numpy as np
import streamlit as st

from fmnist.app.caches import dataset_or_message
from fmnist.app.navigation import enter_through_navigation
from fmnist.data import examples_per_class
from fmnist.imaging import enlarge

enter_through_navigation()
st.title("The data")
dataset = dataset_or_message()
if dataset is not None:
    st.markdown(
        f"**{len(dataset.x_train):,}** training and **{len(dataset.x_test):,}** test images, {dataset.info.size_text} grayscale, "
        f"{dataset.info.num_classes} classes of {len(dataset.x_train) // dataset.info.num_classes:,} training images each. "
        f"Read from `{dataset.source}`."
    )
    per_class = st.slider("Images per class", 4, 16, 10)
    seed = st.session_state.get("data_seed", 0)
    if st.button("Show others", icon=":material/shuffle:"):
        seed = st.session_state["data_seed"] = seed + 1
    picks = examples_per_class(dataset.y_train, per_class, seed, dataset.info.num_classes)
    for label, indices in enumerate(picks):
        st.markdown(f"**{label} · {dataset.info.class_names[label]}**")
        st.image(enlarge(np.hstack(dataset.x_train[indices]), 2), width=per_class * 56,
                 alt=f"{per_class} training images of {dataset.info.class_names[label]}, side by side")
