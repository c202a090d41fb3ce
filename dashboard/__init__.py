"""The Streamlit dashboard: a consumer thread fills bounded buffers, the script charts them."""
