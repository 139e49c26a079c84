"""Leaderboard: every run, best first; tick runs to compare their curves, rename, download or delete them."""

from functools import partial

import streamlit as st

from fmnist import services
from fmnist.access import LOCAL_ADMIN, may_manage
from fmnist.app.activity import active_runs, run_choice, run_label
from fmnist.app.caches import get_store
from fmnist.app.navigation import enter_through_navigation, no_runs_yet
from fmnist.app.queue_view import follow_run
from fmnist.app.session import acting, current_person, current_sharing
from fmnist.app.stack_links import open_in_build_and_train
from fmnist.app.take_home import code_downloads
from fmnist.charts import curves_summary, overlay_curves
from fmnist.compare_charts import size_vs_accuracy
from fmnist.dataset import FASHION_MNIST
from fmnist.export_formats import VARIANTS, export_zip, exports_table, kept_exports, latest_exports
from fmnist.leaderboard import curves_csv, leaderboard_table, model_file_problem, seed_comparison, training_runs
from fmnist.names import MAX_RUN_NAME
from fmnist.runs import RunKind, RunStatus
from fmnist.store import RunStore
from fmnist.text import in_chart, shown

TABLE_KEY = "lb_table"
SCORE = st.column_config.NumberColumn(format="%.4f")


def keep_ticks_on_their_runs(run_ids: list[int]) -> None:
    """A table selection is a list of row positions. When a finished run moves up the board
    or a run is deleted, move the ticks so that they stay on the same runs."""
    before = st.session_state.get("lb_row_ids")
    state = st.session_state.get(TABLE_KEY)
    if before and state and before != run_ids:
        ticked = [before[row] for row in state["selection"]["rows"] if row < len(before)]
        st.session_state[TABLE_KEY] = {"selection": {"rows": [run_ids.index(r) for r in ticked if r in run_ids]}}
    st.session_state.lb_row_ids = run_ids


def runs_table(table) -> list[int]:
    """The sortable table; returns the ticked runs' ids in the order they stand on the board."""
    event = st.dataframe(
        table, hide_index=True, width="stretch", key=TABLE_KEY, on_select="rerun", selection_mode="multi-row", placeholder="—",
        column_config={
            "run": st.column_config.NumberColumn(format="#%d", width="small"),
            "best": st.column_config.TextColumn("", width="small"),
            "test accuracy": SCORE, "test loss": SCORE, "best val accuracy": SCORE,
            "train time (s)": st.column_config.NumberColumn(format="%.1f"),
            "samples/s": st.column_config.NumberColumn(format="%.0f"),
            "backend": st.column_config.TextColumn(help="the Keras backend that trained the run"),
            "params": st.column_config.NumberColumn(format="localized"),
            "created": st.column_config.DatetimeColumn(format="YYYY-MM-DD HH:mm"),
        },
    )
    return [int(table["run"].iloc[row]) for row in sorted(event.selection.rows)]


def compare(store: RunStore, runs: dict, table, selected: list[int]) -> None:
    st.subheader("Compare")
    if selected:
        curves = {in_chart(run_choice(runs[run_id])): store.epochs(run_id) for run_id in selected}
        loss, acc = st.columns(2)
        loss.plotly_chart(overlay_curves(curves, "loss"), key="lb_loss", config={"displayModeBar": False})
        acc.plotly_chart(overlay_curves(curves, "accuracy"), key="lb_accuracy", config={"displayModeBar": False})
        # The names in words as Markdown shows them (escaped), not as the chart's legend takes them (HTML-escaped).
        st.caption("Training solid, validation dashed. " + " ".join(
            curves_summary(run_label(runs[run_id]), store.epochs(run_id), "accuracy") for run_id in selected))
    else:
        st.info("Tick runs in the table to see their loss and accuracy curves side by side.", icon=":material/check_box:")
    if table["test accuracy"].notna().any():
        st.plotly_chart(size_vs_accuracy(table, selected), key="lb_size", config={"displayModeBar": False})


def confirm_delete(run_id: int | None) -> None:
    st.session_state.lb_confirm = run_id


def refused(action) -> bool:
    """Do action (a service call, in a button's callback, as it happens); if it is refused, the page
    says why and nothing changes."""
    try:
        action()
        return False
    except services.REFUSED as e:
        st.session_state.lb_problem = str(e)
        return True


def rename(store: RunStore, run_id: int) -> None:
    refused(lambda: services.rename(store, acting(), run_id, st.session_state[f"lb_name_{run_id}"]))


def delete(store: RunStore, run_id: int) -> None:
    """Runs as a button callback, before the page draws, so the table no longer shows the run."""
    if not refused(lambda: services.delete(store, acting(), run_id)):
        st.toast(f"Deleted run #{run_id}", icon=":material/delete:")
    confirm_delete(None)


def model_download(store: RunStore, run) -> None:
    if run.kind == RunKind.TRIAL:
        st.caption("A search's trial keeps no model: train the best one from the Search page.")
        return
    if run.active:
        st.caption("The model can be downloaded once training ends.")
        return
    if not run.status.has_model:
        st.caption(f"No model: the run {run.status}.")
        return
    problem = model_file_problem(store, run.id)
    if problem:
        st.error(f"{problem} It cannot be downloaded or evaluated; the run can still be deleted.", icon=":material/broken_image:")
        return
    # A callable: the file is read when the button is pressed, not on every rerun.
    st.download_button(
        "Model (.keras)", store.model_path(run.id).read_bytes, file_name=f"run-{run.id}.keras",
        mime="application/zip", icon=":material/download:", key=f"lb_model_{run.id}", on_click="ignore",
    )


def delete_button(run, mine: bool) -> None:
    if not mine:
        st.button("Delete", key=f"lb_delete_{run.id}", icon=":material/delete:", disabled=True)
        st.caption(f"Started by {shown(run.owner_name or LOCAL_ADMIN.name)}: only they or a teacher may rename or delete it.")
    elif run.active:
        st.button("Delete", key=f"lb_delete_{run.id}", icon=":material/delete:", disabled=True)
        st.caption(f"Run #{run.id} is {run.status}: stop it first (on Build & Train) to delete it.")
    else:
        st.button("Delete…", key=f"lb_delete_{run.id}", icon=":material/delete:", on_click=confirm_delete, args=(run.id,))


def confirm_deletion(store: RunStore, run) -> None:
    st.warning(f"Delete run #{run.id} **{shown(run.name)}** with its model, curves and logs? This cannot be undone.",
               icon=":material/warning:")
    with st.container(horizontal=True):
        st.button("Yes, delete", key=f"lb_yes_{run.id}", type="primary", on_click=delete, args=(store, run.id))
        st.button("Cancel", key=f"lb_no_{run.id}", on_click=confirm_delete, args=(None,))


def manage(store: RunStore, run) -> None:
    with st.container(border=True):
        st.markdown(f"**{run_label(run)}** · {run.status}" + (f" · by {shown(run.owner_name)}" if run.owner_name else ""))
        person = current_person()
        mine = person is not None and may_manage(person, run)
        name, files, remove = st.columns([2, 2, 1.2], vertical_alignment="bottom")
        with name:
            field, button = st.columns([3, 1], vertical_alignment="bottom")
            field.text_input("Name", value=run.name, key=f"lb_name_{run.id}", max_chars=MAX_RUN_NAME)
            button.button("Rename", key=f"lb_rename_{run.id}", on_click=rename, args=(store, run.id), disabled=not mine)
        with files:
            model, csv = st.columns(2)
            with model:
                model_download(store, run)
            csv.download_button(
                "Curves (.csv)", partial(curves_csv, store, run.id), file_name=f"run-{run.id}-curves.csv",
                mime="text/csv", icon=":material/download:", key=f"lb_csv_{run.id}", on_click="ignore",
            )
        with remove:
            delete_button(run, mine)
        if st.session_state.get("lb_confirm") == run.id and not run.active:
            confirm_deletion(store, run)
        repeat_controls(store, run, mine)
        export_controls(store, run, mine)
        open_in_build_and_train(run)  # its stack and settings on Build & Train, as a link
        code_downloads(store, run, "lb")


def start_export(store: RunStore, run_id: int, variant) -> None:
    if not refused(lambda: services.export(store, acting(), run_id, variant)):
        st.toast(f"Queued: the {variant.label} export of run #{run_id}", icon=":material/schedule:")


def export_controls(store: RunStore, run, mine: bool) -> None:
    """A download per format, made on demand and kept with the run. An export is a run in the queue (kind
    export), made in a process of its own: this page never loads TensorFlow or a converter. While one is
    queued or made its progress shows here, with a Stop; once kept, its download; if it failed, why. Only
    the run's owner or a teacher may export it, as for a cross-validation; anyone may download an export."""
    if run.kind != RunKind.TRAIN or not run.status.has_model or model_file_problem(store, run.id):
        return
    kept, latest = kept_exports(store, run.id), latest_exports(store, run.id)
    st.markdown("**Take the model out of the app**, each export checked against it on 1,000 test images:")
    with st.container(horizontal=True):
        for variant in VARIANTS:
            if variant.key in kept:
                st.download_button(
                    f"{variant.label} (.zip)", partial(export_zip, store, run.id, variant), file_name=f"run-{run.id}-{variant.key}.zip",
                    mime="application/zip", icon=":material/download:", key=f"lb_export_get_{run.id}_{variant.key}", on_click="ignore",
                    help="the model with its model card (what it expects, its classes, its check)",
                )
            else:
                making = variant.key in latest and latest[variant.key].active
                st.button(f"Export {variant.label}", key=f"lb_export_{run.id}_{variant.key}", icon=":material/output:",
                          on_click=start_export, args=(store, run.id, variant), disabled=not mine or making,
                          help=f"convert to {variant.label} and check it in {variant.runtime}; about ten seconds once it starts"
                          if mine else f"started by {shown(run.owner_name or LOCAL_ADMIN.name)}: only they or a teacher may export it")
    for variant in VARIANTS:
        export = latest.get(variant.key)
        if export is None or variant.key in kept:
            continue
        if export.active:
            follow_run(export.id, f"The {variant.label} export", f"lb_export_stop_{run.id}_{variant.key}")
        elif export.status in (RunStatus.FAILED, RunStatus.INTERRUPTED):
            st.error(f"No {variant.label} export: {export.error}", icon=":material/error:")
    if kept:
        st.dataframe(exports_table(kept), hide_index=True, width="stretch", key=f"lb_exports_{run.id}", column_config={
            "accuracy": SCORE, "Keras": st.column_config.NumberColumn(format="%.4f", help="the Keras model's accuracy on the same images"),
            "drop (points)": st.column_config.NumberColumn(format="%+.2f", help="the Keras model's accuracy minus the export's"),
            "same class": st.column_config.NumberColumn(format="percent", help="images for which the export picks the Keras model's class"),
            "max prob. diff.": st.column_config.NumberColumn(format="%.1e", help="the largest difference in any class probability"),
            "bytes": st.column_config.NumberColumn(format="localized", help="the export's size"),
            "ms/image": st.column_config.NumberColumn(format="%.3f", help="one image at a time, in the export's runtime"),
            "Keras ms/image": st.column_config.NumberColumn(format="%.3f"),
        })
        st.caption(f"Each zip holds the model and its model card: the input it expects ({FASHION_MNIST.size_text} grayscale, a light item on black, "
                   "0–1), the classes in order, this check. How to classify a photo with onnxruntime alone: "
                   "docs/exports.md, \"Classify a PNG with onnxruntime alone\".")


def start_job(store: RunStore, run_id: int, kind: RunKind, count_key: str) -> None:
    try:
        job_id = services.start_repeat(store, acting(), run_id, kind, st.session_state[count_key])
    except services.REFUSED as e:
        st.session_state.lb_problem = str(e)
        return
    st.toast(f"Queued job #{job_id}: {shown(store.get(job_id).name)}", icon=":material/schedule:")


def job_status(store: RunStore, run_id: int) -> None:
    """This run's cross-validation and seed jobs: progress while they train, scores as folds end.
    It refreshes only while one of them is queued or training; the page runs again when they end
    (the sidebar notices), and draws it still."""
    active = any(job.active for job in repeat_jobs(store, run_id))
    st.fragment(job_lines, run_every=2.0 if active else None)(store, run_id)


def repeat_jobs(store: RunStore, run_id: int) -> list:
    """The run's cross-validation and seed jobs (its exports show with the exports)."""
    return [job for job in store.children(run_id) if job.kind in (RunKind.CV, RunKind.SEEDS)]


def job_lines(store: RunStore, run_id: int) -> None:
    jobs = repeat_jobs(store, run_id)
    for job in jobs[-3:]:
        scores = ", ".join(f"{s:.4f}" for s in job.scores) or "none yet"
        if job.active:
            st.progress(job.fraction_done(), text=f"{shown(job.name)} · {job.status} · scores so far: {scores}")
        else:
            text = f"{shown(job.name)} · {job.status} · {len(job.scores)}/{job.repeats} scores: {scores}"
            st.caption(text + (f" · {job.error}" if job.error else ""))


def repeat_controls(store: RunStore, run, mine: bool) -> None:
    """Cross-validation (the seed's 'cross validation score') and the spread over seeds, run by the engine:
    the run's owner's (or a teacher's) to start, as a job on someone else's run would block their delete."""
    if not run.status.has_model or run.kind != RunKind.TRAIN:
        return
    folds, cv, seeds, repeat = st.columns([1, 1.4, 1, 1.6], vertical_alignment="bottom")
    folds.number_input("Folds", 2, 10, 5, key=f"lb_folds_{run.id}")
    cv.button("Cross-validate", key=f"lb_cv_{run.id}", icon=":material/view_week:", on_click=start_job,
              args=(store, run.id, RunKind.CV, f"lb_folds_{run.id}"), disabled=not mine,
              help="Stratified k-fold on the training images with this run's settings: mean ± std of the held-out folds' accuracy.")
    seeds.number_input("Seeds", 2, 10, 3, key=f"lb_seeds_{run.id}")
    repeat.button("Repeat with seeds", key=f"lb_repeat_{run.id}", icon=":material/casino:", on_click=start_job,
                  args=(store, run.id, RunKind.SEEDS, f"lb_seeds_{run.id}"), disabled=not mine,
                  help="Train these settings again with other seeds: the test accuracy's spread from chance alone.")
    job_status(store, run.id)


def seed_table(store: RunStore, runs: list) -> None:
    st.subheader("Reproduce the seed's table")
    st.caption(f"The seed notebook trained four dense stacks for ten epochs with Adam on all {FASHION_MNIST.train_size:,} images. "
               "Train them here with the same settings and see how close the figures come.")
    if st.button("Train the seed's four stacks", icon=":material/replay:", key="lb_seed_train"):
        try:
            queued, limited = services.train_seed_stacks(store, acting())
        except services.REFUSED as e:
            queued, limited = [], str(e)
        if queued:
            st.success(f"Queued {', '.join(f'#{r}' for r in queued)}: they train one after another, "
                       "each a few minutes. This table fills in as they finish.", icon=":material/schedule:")
        if limited:
            st.error(limited, icon=":material/block:")
        elif not queued:
            st.info("The four stacks are already queued or training.", icon=":material/schedule:")
        runs = training_runs(store.list_runs())
    st.dataframe(
        seed_comparison(runs), hide_index=True, width="stretch", placeholder="—",
        column_config={
            "seed test loss": SCORE, "seed test accuracy": SCORE, "test loss": SCORE, "test accuracy": SCORE,
            "difference (points)": st.column_config.NumberColumn(format="%+.2f"),
        },
    )


enter_through_navigation()
st.title("Leaderboard")
store = get_store()
active_runs(store)  # marks runs whose process died
all_runs = store.list_runs()
runs = training_runs(all_runs)
trials = [run for run in all_runs if run.kind == RunKind.TRIAL]
if trials and st.toggle(f"Show the searches' trials ({len(trials)})", key="lb_trials",
                        help="scored on validation accuracy only: a trial never sees the test set"):
    runs = runs + trials
if not runs:
    no_runs_yet("No runs yet. Train your first model on the Build & Train page: pick a preset and press **Start training**.")
else:
    table = leaderboard_table(runs, with_owner=current_sharing().signs_in)
    keep_ticks_on_their_runs([int(r) for r in table["run"]])
    st.caption("Best test accuracy first; click a column header to sort. Tick runs to compare, rename, download or delete them.")
    selected = runs_table(table)
    by_id = {run.id: run for run in runs}
    if problem := st.session_state.pop("lb_problem", None):
        st.error(problem, icon=":material/error:")
    compare(store, by_id, table, selected)
    if selected:
        st.subheader("Ticked runs")
        for run_id in selected:
            manage(store, by_id[run_id])
seed_table(store, training_runs(all_runs))
