"""`python -m vatcodec`: the same command line as the `vatcodec` console script."""

from vatcodec.cli import app

app(prog_name="vatcodec")
