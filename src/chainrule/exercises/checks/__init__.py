"""The checks of each exercise, one module per exercise, each exposing `CHECKS`."""
