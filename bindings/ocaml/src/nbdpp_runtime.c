// nbdpp_runtime.c: hand-written helpers of the OCaml stubs: handles, closures, lock, errors.
#include "nbdpp_ocaml.h"

#include <errno.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <caml/alloc.h>
#include <caml/bigarray.h>
#include <caml/callback.h>
#include <caml/custom.h>
#include <caml/fail.h>
#include <caml/memory.h>
#include <caml/threads.h>
#include <caml/unixsupport.h>

#include <libnbd.h>

// Per thread: whether a stub of this thread released the runtime lock around a C call; how many
// finalisers are running (nbd_close from the garbage collector); the first exception a callback
// raised, waiting for the stub to raise it.
static __thread bool released;
static __thread int in_finaliser;
static __thread value pending = Val_unit;
static __thread bool pending_rooted;

// Closures handed to the C library and not yet freed, for NBD.callbacks_held.
static atomic_long live_closures;

// ---- Handles -----------------------------------------------------------------------------------

#define Handle_val(v) (*(struct nbd_handle **)Data_custom_val(v))

// Closing from the garbage collector: callbacks are refused (in_finaliser), free hooks only drop
// their roots, which is allowed there.  nbd_close takes no handle lock, and no other thread can
// be inside a call on an unreachable handle.
static void handle_finalize(value hv) {
  struct nbd_handle *h = Handle_val(hv);
  if (h == NULL)
    return;
  Handle_val(hv) = NULL;
  ++in_finaliser;
  nbd_close(h);
  --in_finaliser;
}

static struct custom_operations handle_ops = {
    .identifier = "nbdpp.handle",
    .finalize = handle_finalize,
    .compare = custom_compare_default,
    .hash = custom_hash_default,
    .serialize = custom_serialize_default,
    .deserialize = custom_deserialize_default,
    .compare_ext = custom_compare_ext_default,
    .fixed_length = custom_fixed_length_default,
};

value nbdpp_ocaml_alloc_handle(struct nbd_handle *h) {
  // A handle owns sockets, buffers and maybe a thread: count it as a little pressure so that
  // unreachable handles do not pile up between major collections.
  value hv = caml_alloc_custom(&handle_ops, sizeof h, 1, 256);
  Handle_val(hv) = h;
  return hv;
}

struct nbd_handle *nbdpp_ocaml_handle(value hv, const char *call) {
  struct nbd_handle *h = Handle_val(hv);
  if (h == NULL)
    caml_raise_with_string(*caml_named_value("nbdpp_ocaml_closed"), call);
  return h;
}

struct nbd_handle *nbdpp_ocaml_take_handle(value hv) {
  struct nbd_handle *h = Handle_val(hv);
  Handle_val(hv) = NULL;
  return h;
}

// ---- Runtime lock ------------------------------------------------------------------------------

void nbdpp_ocaml_release(void) {
  released = true;
  caml_release_runtime_system();
}

void nbdpp_ocaml_acquire(void) {
  caml_acquire_runtime_system();
  released = false;
}

// ---- Closures ----------------------------------------------------------------------------------

void *nbdpp_ocaml_closure_new(value fn, value keep) {
  struct nbdpp_ocaml_closure *cl = malloc(sizeof *cl);
  if (cl == NULL)
    return NULL;
  cl->fn = fn;
  cl->keep = keep;
  caml_register_generational_global_root(&cl->fn);
  caml_register_generational_global_root(&cl->keep);
  atomic_fetch_add(&live_closures, 1);
  return cl;
}

void nbdpp_ocaml_closure_free(void *user_data) {
  struct nbdpp_ocaml_closure *cl = user_data;
  if (cl == NULL)
    return;
  const int saved_errno = errno;
  const bool reacquire = released;
  if (reacquire)
    nbdpp_ocaml_acquire();
  caml_remove_generational_global_root(&cl->fn);
  caml_remove_generational_global_root(&cl->keep);
  if (reacquire)
    nbdpp_ocaml_release();
  free(cl);
  atomic_fetch_sub(&live_closures, 1);
  errno = saved_errno;
}

value nbdpp_ocaml_option_fn(value opt) { return Is_none(opt) ? Val_unit : Some_val(opt); }

value nbdpp_ocaml_callbacks_held(value unit);
value nbdpp_ocaml_callbacks_held(value unit) {
  (void)unit;
  return Val_long(atomic_load(&live_closures));
}

bool nbdpp_ocaml_callback_enter(bool *reacquired) {
  *reacquired = false;
  if (in_finaliser > 0)
    return false;
  if (released) {
    nbdpp_ocaml_acquire();
    *reacquired = true;
  }
  return true;
}

void nbdpp_ocaml_callback_leave(bool reacquired) {
  // A failing callback's errno must survive giving the lock back (nbd_writer_callback).
  const int saved_errno = errno;
  if (reacquired)
    nbdpp_ocaml_release();
  errno = saved_errno;
}

int nbdpp_ocaml_callback_refused(int *error) {
  if (error != NULL && *error == 0)
    *error = ECANCELED;
  errno = ECANCELED;
  return -1;
}

int nbdpp_ocaml_callback_raised(value exn, int *error) {
  int code = ECANCELED;
  // Callback.register_exception stores the exception's constructor, Field(exn, 0).
  const value *unix_error = caml_named_value("Unix.Unix_error");
  if (unix_error != NULL && Is_block(exn) && Tag_val(exn) == 0 && Wosize_val(exn) >= 2 &&
      Field(exn, 0) == *unix_error)
    code = code_of_unix_error(Field(exn, 1));
  if (!pending_rooted) {
    pending = exn;
    caml_register_generational_global_root(&pending);
    pending_rooted = true;
  }
  if (error != NULL && *error == 0)
    *error = code;
  errno = code;
  return -1;
}

value nbdpp_ocaml_errno_of_unix_error(value error);
value nbdpp_ocaml_errno_of_unix_error(value error) { return Val_int(code_of_unix_error(error)); }

// ---- Values ------------------------------------------------------------------------------------

value nbdpp_ocaml_copy_string(const char *s) { return caml_copy_string(s != NULL ? s : ""); }

value nbdpp_ocaml_copy_bytes(const void *data, size_t len) {
  value b = caml_alloc_string(len);
  if (len > 0)
    memcpy(Bytes_val(b), data, len);
  return b;
}

// An int64 array, as libnbd's OCaml binding passes 32-bit extent entries.
value nbdpp_ocaml_copy_uint32_array(const uint32_t *data, size_t len) {
  CAMLparam0();
  CAMLlocal2(a, entry);
  a = caml_alloc(len, 0);
  for (size_t i = 0; i < len; ++i) {
    entry = caml_copy_int64((int64_t)data[i]);
    Store_field(a, i, entry);
  }
  CAMLreturn(a);
}

value nbdpp_ocaml_copy_extent64_array(const nbd_extent *data, size_t len) {
  CAMLparam0();
  CAMLlocal4(a, pair, length, flags);
  a = caml_alloc(len, 0);
  for (size_t i = 0; i < len; ++i) {
    length = caml_copy_int64((int64_t)data[i].length);
    flags = caml_copy_int64((int64_t)data[i].flags);
    pair = caml_alloc_tuple(2);
    Store_field(pair, 0, length);
    Store_field(pair, 1, flags);
    Store_field(a, i, pair);
  }
  CAMLreturn(a);
}

value nbdpp_ocaml_alloc_ref(int v) {
  value r = caml_alloc(1, 0);
  Store_field(r, 0, Val_int(v));
  return r;
}

value nbdpp_ocaml_cons(value head, value tail) {
  CAMLparam2(head, tail);
  CAMLlocal1(cell);
  cell = caml_alloc(2, 0);
  Store_field(cell, 0, head);
  Store_field(cell, 1, tail);
  CAMLreturn(cell);
}

// ---- Copies out of the OCaml heap --------------------------------------------------------------

char *nbdpp_ocaml_strdup(value s, bool *oom) {
  const size_t len = caml_string_length(s);
  char *p = malloc(len + 1);
  if (p == NULL) {
    *oom = true;
    return NULL;
  }
  memcpy(p, String_val(s), len);
  p[len] = '\0';
  return p;
}

char **nbdpp_ocaml_string_list(value list, bool *oom) {
  size_t n = 0;
  for (value l = list; l != Val_emptylist; l = Field(l, 1))
    ++n;
  char **out = calloc(n + 1, sizeof *out);
  if (out == NULL) {
    *oom = true;
    return NULL;
  }
  size_t i = 0;
  for (value l = list; l != Val_emptylist; l = Field(l, 1), ++i) {
    out[i] = nbdpp_ocaml_strdup(Field(l, 0), oom);
    if (out[i] == NULL) {
      nbdpp_ocaml_free_string_list(out);
      return NULL;
    }
  }
  return out;
}

void nbdpp_ocaml_free_string_list(char **list) {
  if (list == NULL)
    return;
  for (char **p = list; *p != NULL; ++p)
    free(*p);
  free(list);
}

void *nbdpp_ocaml_malloc(value bytes, bool *oom) {
  const size_t len = caml_string_length(bytes);
  void *p = malloc(len > 0 ? len : 1);
  if (p == NULL)
    *oom = true;
  return p;
}

void *nbdpp_ocaml_copy_in(value bytes, bool *oom) {
  void *p = nbdpp_ocaml_malloc(bytes, oom);
  if (p != NULL)
    memcpy(p, Bytes_val(bytes), caml_string_length(bytes));
  return p;
}

void *nbdpp_ocaml_buffer_data(value buf) { return Caml_ba_data_val(buf); }

size_t nbdpp_ocaml_buffer_size(value buf) { return caml_ba_byte_size(Caml_ba_array_val(buf)); }

// ---- Errors ------------------------------------------------------------------------------------

void nbdpp_ocaml_save_error(struct nbdpp_ocaml_error *err) {
  const char *msg = nbd_get_error();
  err->msg = msg != NULL ? strdup(msg) : NULL;
  err->errnum = nbd_get_errno();
}

void nbdpp_ocaml_raise_pending(struct nbdpp_ocaml_error *err) {
  if (!pending_rooted)
    return;
  // Nothing allocates between dropping the root and raising.
  const value exn = pending;
  nbdpp_ocaml_drop_pending();
  if (err != NULL) {
    free(err->msg);
    err->msg = NULL;
  }
  caml_raise(exn);
}

void nbdpp_ocaml_drop_pending(void) {
  if (!pending_rooted)
    return;
  caml_remove_generational_global_root(&pending);
  pending = Val_unit;
  pending_rooted = false;
}

void nbdpp_ocaml_raise_error(struct nbdpp_ocaml_error *err, const char *call) {
  CAMLparam0();
  CAMLlocal1(errnum);
  CAMLlocalN(args, 2);
  if (err->msg != NULL) {
    args[0] = caml_copy_string(err->msg);
    free(err->msg);
    err->msg = NULL;
  } else {
    args[0] = caml_alloc_sprintf("%s: failed", call);
  }
  if (err->errnum != 0) {
    errnum = unix_error_of_code(err->errnum);
    args[1] = caml_alloc_some(errnum);
  } else {
    args[1] = Val_none;
  }
  caml_raise_with_args(*caml_named_value("nbdpp_ocaml_error"), 2, args);
}
