"""The commissioners' pathway dashboard (Streamlit): suppressed aggregate marts only."""
