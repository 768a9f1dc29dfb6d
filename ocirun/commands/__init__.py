"""The command layer: argv in, calls on the library, output and an exit status out.

``ocirun.cli`` holds runc's command tree (global flags, each command's flags, argument counts) and
dispatches; each module here turns one family of commands into calls on the core
(:class:`ocirun.container.Runtime` and the modules behind it), prints what runc prints and returns runc's
exit status.  The core returns values and raises :class:`ocirun.errors.OciError`; it never imports this
package or ``ocirun.cli`` (tests/unit/test_structure.py checks it).

    argv.py       flag parsing, usage errors, --preserve-fds (shared by every command)
    edge.py       an error as one line on stderr and in the log, and its exit status
    lifecycle.py  create, run, start, kill, delete
    inspect.py    state, list, ps, events (read containers, change nothing)
    isolation.py  inspect (a container's isolation as the kernel holds it: table or JSON)
    update.py     update (runc's resource flags, --resources FILE|-)
    pause.py      pause, resume
    exec.py       exec (its flags → ExecOptions; runc's "exec failed" and exit status 255)
    spec.py       spec, features
    validate.py   validate (every problem of a config.json, through jsonschema)

Each command module is imported only when its command runs, and imports inside a function what only
one of its commands needs, so `ocirun state` pays for nothing else.
"""
