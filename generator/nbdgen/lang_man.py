# Roff rendering for the man pages.
EXPORTS = ["roff_escape"]


def roff_escape(text):
    out = str(text).replace("\\", "\\e").replace("-", "\\-")
    return "\n".join("\\&" + l if l.startswith((".", "'")) else l for l in out.split("\n"))
