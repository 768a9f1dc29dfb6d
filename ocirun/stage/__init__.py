"""The stages: the code that runs in the re-exec'd interpreter between `create`/`exec` and the execve.

    entry.py    what the interpreter runs first (:func:`entry.main`): signals, non-dumpable, its name,
                the CONFIG message; then the create stage or the exec stage
    create.py   `create`: stage 1 (namespaces, fork) and stage 2 (pid 1: filesystem, READY, `start`, execve)
    exec.py     `exec`: join the container's namespaces, fork into its pid namespace, execve
    common.py   what both stages do the same way: imports before the host's files go out of reach,
                error reports to the parent, seccomp loading, the exec state and the execve

Each stage is one linear sequence; its numbered sync points are those of the protocol diagrams in
:mod:`ocirun.sync`.  The runtime's commands never import this package: they start it by name
(:data:`ocirun.stagespawn.BOOT`).  This __init__ imports nothing, so a stage loads only what it runs.
"""
