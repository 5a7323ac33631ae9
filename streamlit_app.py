"""radplan dashboard entry point: page config, the shared sidebar and navigation. Run `make run`
(or `streamlit run streamlit_app.py`). Pages live in planner/dashboard/pages/ and call the public API."""
from pathlib import Path

import streamlit as st

from planner.dashboard import state

PAGES = Path(__file__).parent / "planner" / "dashboard" / "pages"

st.set_page_config(page_title="radplan: GPU capacity planner for radiology AI", page_icon=":material/memory:",
                   layout="wide")

# url paths follow the file names (/roofline, /compare, ...); the first page is also served at /
pages = [
    st.Page(PAGES / "plan.py", title="Plan", icon=":material/event_note:", default=True),
    st.Page(PAGES / "roofline.py", title="Roofline explorer", icon=":material/show_chart:"),
    st.Page(PAGES / "compare.py", title="Compare accelerators", icon=":material/compare_arrows:"),
    st.Page(PAGES / "quantization.py", title="Quantization", icon=":material/compress:"),
    st.Page(PAGES / "measured.py", title="Measured vs predicted", icon=":material/fact_check:"),
    st.Page(PAGES / "hardware.py", title="Hardware specs", icon=":material/developer_board:"),
]
page = st.navigation(pages)

state.restore_accelerators()
with st.sidebar:
    st.markdown("**radplan** · GPU capacity planner for radiology AI inference")
    state.select("Serving engine profile", ["optimized", "compiled", "eager"], "engine", "optimized",
                 help="optimized: TensorRT-LLM/vLLM-class engine; compiled: torch.compile (gpt-fast); "
                      "eager: plain PyTorch. Each is a fitted overhead profile.")
    st.caption("Numbers are predictions of the roofline model unless a page says *measured*. Its efficiency "
               "factors are fitted to published measurements (data/reference/), so the accuracy quoted for "
               "them is in-sample.")
    ups = state.uploaded_ids()
    if ups:
        st.caption("Your uploaded accelerators (this browser session): " + ", ".join(ups))

try:
    page.run()
except Exception as e:   # never a traceback in the browser; st.stop/st.rerun are BaseExceptions and pass
    st.error(f"Internal error on this page: {type(e).__name__}: {e}. Please report it with the page URL.")
