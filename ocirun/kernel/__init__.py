"""The kernel seam: the only place in ocirun that calls libc or raw system calls.

Everything above this package talks to the kernel through these functions, so
that (a) there is one place to read for every privileged operation, and (b) the
unit tests can replace them with the recording fake in :mod:`ocirun.kernel.fake`.
"""
