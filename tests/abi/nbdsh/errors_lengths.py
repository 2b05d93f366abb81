# errors_lengths.py: strings longer than NBD's 4096-byte limit are refused when they are set.
n = nbd.NBD()
call("set_export_name 4096 bytes", n.set_export_name, "x" * 4096)
call("set_export_name 4097 bytes", n.set_export_name, "x" * 4097)
call("add_meta_context 4096 bytes", n.add_meta_context, "x" * 4096)
call("add_meta_context 4097 bytes", n.add_meta_context, "x" * 4097)
call("get_nr_meta_contexts", n.get_nr_meta_contexts)
