"""Build & Train's settings in the page's address (st.query_params), a link to a run's stack, and
filling the page's controls from a stack (a link, *Open in Build & Train*, the coach's *Try it*).

The mapping itself is fmnist.stack_link (pure); this module moves it in and out of st.session_state
(the controls' keys, before the controls are drawn) and st.query_params."""

from dataclasses import replace
from urllib.parse import urlencode

import streamlit as st

from fmnist.app.navigation import TRAIN_PAGE
from fmnist.models import PRESETS, ConvBlock, DenseLayer, ModelSpec
from fmnist.runs import Run
from fmnist.stack_link import ALL_IMAGES, LinkError, Stack, link_params, problems_message, read_link

# Each training setting of the spec and the Build & Train control that holds it.
SETTING_WIDGETS = {
    "epochs": "build_epochs", "batch_size": "build_batch_size", "learning_rate": "build_lr", "val_split": "build_val_split",
    "lr_schedule": "build_lr_schedule", "augment": "build_augment", "mixed_precision": "build_mixed_precision",
    "seed": "build_seed", "early_stopping": "build_early_stopping", "patience": "build_patience", "checkpoint": "build_checkpoint",
}
LINK_SEEN = "stack_link_seen"  # the query parameters the page last applied or wrote: others are a link to open
PENDING = "stack_pending"  # (stack, message, notes) for the next page run to fill the controls with (Try it)


def controls_stack() -> Stack:
    """What Build & Train's controls hold now, as pages/train.py builds its spec from them (not validated)."""
    state = st.session_state
    per_layer = bool(state.get("build_per_layer", False))
    shared = (state.get("build_activation", "relu"), state.get("build_dropout", 0.0), state.get("build_batch_norm", False))

    def own(i: int) -> tuple:
        return (state.get(f"build_activation_{i}", "relu"), state.get(f"build_dropout_{i}", 0.0), state.get(f"build_batch_norm_{i}", False))

    layers = tuple(DenseLayer(state.get(f"build_width_{i}", 64), *(own(i) if per_layer else shared)) for i in range(state.build_layers))
    conv = tuple(ConvBlock(state.get(f"build_filters_{i}", 32), state.get(f"build_kernel_{i}", 3), shared[0], state.get(f"build_pool_{i}", True),
                           state.get(f"build_conv_dropout_{i}", 0.0), state.get(f"build_conv_norm_{i}", False))
                 for i in range(state.get("build_conv_blocks", 0)))
    spec = ModelSpec(layers=layers, conv=conv, **{field: state[key] for field, key in SETTING_WIDGETS.items() if key in state})
    limit = state.get("build_limit", ALL_IMAGES)
    return Stack(spec, None if limit == ALL_IMAGES else limit, state.get("build_backend", "auto"), per_layer)


def fill_controls(stack: Stack) -> None:
    """Set every control of Build & Train to the stack (before the controls are drawn)."""
    state, spec = st.session_state, stack.spec
    state.build_preset = next((name for name, preset in PRESETS.items() if preset == spec), "Custom")
    state.build_layers = len(spec.layers)
    state.build_per_layer = stack.per_layer
    for i, layer in enumerate(spec.layers):
        state[f"build_width_{i}"], state[f"build_activation_{i}"] = layer.units, layer.activation
        state[f"build_dropout_{i}"], state[f"build_batch_norm_{i}"] = layer.dropout, layer.batch_norm
    first = spec.layers[0]
    # Without per-layer settings one activation serves the conv blocks and the dense layers; with them it is the blocks'.
    state.build_activation = spec.conv[0].activation if stack.per_layer and spec.conv else first.activation
    state.build_dropout, state.build_batch_norm = first.dropout, first.batch_norm
    state.build_conv_blocks = len(spec.conv)
    for i, block in enumerate(spec.conv):
        state[f"build_filters_{i}"], state[f"build_kernel_{i}"], state[f"build_pool_{i}"] = block.filters, block.kernel_size, block.pool
        state[f"build_conv_norm_{i}"], state[f"build_conv_dropout_{i}"] = block.batch_norm, block.dropout
    for field, key in SETTING_WIDGETS.items():
        state[key] = getattr(spec, field)
    state.build_limit = stack.train_limit or ALL_IMAGES
    state.build_backend = stack.backend


def open_link() -> None:
    """Call before the controls are drawn: fill them from a *Try it* just pressed, or from the
    address's query parameters when they are a link this page has not seen (opened, pasted,
    *Open in Build & Train*); whatever of a link cannot be applied is named in one message."""
    if pending := st.session_state.pop(PENDING, None):
        stack, message, notes = pending
        fill_controls(stack)
        st.success(message + "".join(f" {note[0].upper()}{note[1:]}." for note in notes), icon=":material/auto_fix_high:")
    present = st.query_params.to_dict()
    if not present or present == st.session_state.get(LINK_SEEN):
        return
    st.session_state[LINK_SEEN] = present
    stack, problems = read_link(present, controls_stack())
    fill_controls(stack)
    if problems:
        st.warning(problems_message(problems), icon=":material/link_off:")


def keep_in_link(spec: ModelSpec | None) -> None:
    """Call after the controls are drawn, with the spec they make (None: it cannot be built, and the
    address keeps the last one that could): the address's query parameters follow the controls,
    written only when a setting changed. Under them, the link to copy."""
    if spec is None:
        return
    try:
        params = link_params(replace(controls_stack(), spec=spec))
    except LinkError:
        return
    if st.query_params.to_dict() != params:
        st.query_params.from_dict(params)  # changes the address; no page run
    st.session_state[LINK_SEEN] = params
    with st.expander("Link to this stack", icon=":material/link:"):
        st.caption("Whoever opens it gets these settings on Build & Train. The address bar holds the same link; "
                   "select the text below, or use its copy button, to copy it.")
        st.code(stack_url(params), language=None, wrap_lines=True)


def stack_url(params: dict) -> str:
    """The page's address with the stack's parameters (the address the browser opened, when known)."""
    here = (st.context.url or "").split("?")[0] or "http://127.0.0.1:8501/"
    return f"{here}?{urlencode(params, safe=',')}"


def run_stack(run: Run) -> Stack:
    return Stack(run.spec, run.train_limit, run.backend_setting or "auto")


def open_in_build_and_train(run: Run) -> None:
    """A link to Build & Train holding the run's stack (its query parameters)."""
    try:
        params = link_params(run_stack(run))
    except LinkError as e:
        st.caption(f"Build & Train cannot hold this stack: {e}.")
        return
    st.page_link(TRAIN_PAGE, label="Open in Build & Train", icon=":material/open_in_new:", query_params=params,
                 help="the page's controls set to this run's stack and training settings")


def try_change(run: Run, stack: Stack, what: str) -> None:
    """Fill Build & Train with `stack` (the run's with a change) on the next page run, moving values
    the controls do not offer to the nearest they do; then run the page."""
    try:
        filled, notes = read_link(link_params(stack), controls_stack(), snap=True)
    except LinkError as e:
        st.error(f"Build & Train cannot hold this stack: {e}.", icon=":material/error:")
        return
    st.session_state[PENDING] = (filled, f"Build & Train now holds run #{run.id}'s settings with {what}: press Start training to try it.", notes)
    st.rerun()
