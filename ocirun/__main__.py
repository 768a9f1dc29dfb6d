"""`python -m ocirun ...` is the same CLI as the `ocirun` command."""
from .cli import main

main()
