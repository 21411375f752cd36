"""The simulation report: the HTML/Markdown page (`page`) and its plots (`plots`)."""
