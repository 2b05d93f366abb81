# opt_mode_no_sr.py: a server without structured replies (nbdsh --opt-mode -u NOSR): no meta
# contexts can be listed or negotiated.
call("get_structured_replies_negotiated", h.get_structured_replies_negotiated)
contexts = []
call("opt_list_meta_context", h.opt_list_meta_context, lambda name: contexts.append(name) or 0)
print("contexts:", contexts)
h.add_meta_context("base:allocation")
call("opt_go", h.opt_go)
call("can_meta_context base:allocation", h.can_meta_context, "base:allocation")
call("block_status", h.block_status, 512, 0, lambda *args: 0)
