"""Command modules: each turns one command's argv into calls on the library and an exit status.

The lifecycle commands still live in ocirun.cli and their own modules; new commands start here."""
