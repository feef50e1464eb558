"""`nox -s zoo`: every keras.applications architecture and the kinds of model teams bring, on
every backend against the float64 reference, through the pipeline of `--model`: one table."""
