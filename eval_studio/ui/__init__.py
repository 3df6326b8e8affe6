"""The studio app's tabs (Gradio)."""
