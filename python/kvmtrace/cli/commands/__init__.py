"""One module per ``kvmtrace`` command: ``NAME`` and ``command`` (registered in
:data:`kvmtrace.cli.app.COMMANDS`)."""
