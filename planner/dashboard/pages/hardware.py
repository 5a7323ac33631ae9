"""Hardware specs: every accelerator with its figures and their sources; upload a YAML file to add an
accelerator for this browser session (same schema as hw_specs/*.yaml), with validation errors inline."""
import streamlit as st

import planner
from planner.dashboard import state, tables, upload
from planner.errors import PlannerError



def process_upload() -> None:
    """Parse a newly uploaded file once (by its upload id); the outcome stays shown until the next upload."""
    f = st.session_state.get("hw_upload")
    if f is None:
        st.session_state.pop("hw_upload_msg", None)
        return
    if st.session_state.get("hw_upload_done") == f.file_id:
        return
    st.session_state["hw_upload_done"] = f.file_id
    try:
        new = upload.parse_accelerator_upload(f.getvalue(), f.name)
        state.add_accelerator(new)
    except PlannerError as e:
        st.session_state["hw_upload_msg"] = ("error", f"Not added: {e}")
        return
    st.session_state["hw_upload_msg"] = ("success", f"Added {new.id} ({new.name}) for this browser session; "
                                                    "pick it on the other pages.")
    st.rerun()    # so that the sidebar and the table list it at once


process_upload()
st.title("Hardware specs")
st.caption("Dense peaks only (never the 2:4-sparse headline); memory and link bandwidths per direction; "
           "prices with their date. Every figure has a source, or is marked as an assumption.")

gpus = state.visible_gpus()
accs = [planner.load_gpu(g) for g in gpus]
df = tables.spec_rows(accs, set(state.uploaded_ids()))
kinds = state.multiselect("Kinds", ["gpu", "accelerator", "cpu", "edge"], "kinds",
                          ["gpu", "accelerator", "cpu", "edge"])
view = df[df["kind"].isin(kinds)]
st.dataframe(view, hide_index=True, key="hw_table", column_config={
    "memory_tb_s": st.column_config.NumberColumn("memory TB/s", format="%.2f"),
    "price_usd": st.column_config.NumberColumn("price (USD)", format="%,.0f"),
    "cloud_usd_per_gpu_hour": st.column_config.NumberColumn("cloud $/GPU-h", format="%.2f")})
st.download_button("Download CSV", view.to_csv(index=False), file_name="accelerators.csv", mime="text/csv",
                   key="hw_csv")

st.subheader("Sources")
gpu = state.select("Accelerator", gpus, "gpu", "h100-sxm")
acc = planner.load_gpu(gpu)
st.markdown(f"**{acc.name}** ({acc.vendor}, {acc.form_factor}, {acc.launch_year})")
if acc.notes:
    st.caption(acc.notes)
st.dataframe(tables.source_rows(acc), hide_index=True, key="hw_sources")

st.subheader("Add an accelerator for this session")
st.markdown("Upload a YAML file in the schema of `hw_specs/*.yaml` (see `hw_specs/README.md`; the file name "
            "must be the id, e.g. `my-gpu.yaml` with `id: my-gpu`). It is added for this browser session only, "
            f"and appears on every page. Limit {upload.MAX_UPLOAD_BYTES // 1024} KiB.")
st.file_uploader("Accelerator YAML", type=["yaml", "yml"], key="hw_upload")
msg = st.session_state.get("hw_upload_msg")
if msg:
    (st.error if msg[0] == "error" else st.success)(msg[1])
for acc_id in state.uploaded_ids():
    if st.button(f"Remove {acc_id}", key=f"hw_rm_{acc_id}"):
        state.remove_accelerator(acc_id)
        st.rerun()
