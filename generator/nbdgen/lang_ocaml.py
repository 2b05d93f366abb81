"""OCaml binding generation: names, types and the files under ocaml/ in the output directory."""

# Helpers made available to the templates (none yet).
EXPORTS = []


def outputs(api, common):
    """(target, relative path, template, extra context) for every generated OCaml file."""
    return []
