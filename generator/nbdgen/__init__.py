# nbdgen: turns api.yaml into every public surface of nbdpp (load -> validate -> model -> render).
