"""Small runnable demonstrations (``python -m chainrule.demos.NAME``)."""
