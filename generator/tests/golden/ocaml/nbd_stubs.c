// nbd_stubs.c: the C stubs of the OCaml module NBD, one per call of api.yaml.
// GENERATED from api.yaml by generator/generate.py: DO NOT EDIT.
// Each stub: check the handle; convert the arguments (conversions that can raise come before
// anything is allocated); copy strings and bytes out of the OCaml heap; box the closures; release
// the runtime lock around calls that take the handle lock; call; take the lock back; copy results
// in; free the copies; raise a callback's exception, then the call's error.  The helpers are in
// nbdpp_runtime.c.
#include <stdbool.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include <caml/alloc.h>
#include <caml/callback.h>
#include <caml/fail.h>
#include <caml/memory.h>
#include <caml/mlvalues.h>
#include <caml/socketaddr.h>

#include <libnbd.h>

#include "nbdpp_ocaml.h"

// MODE.t <-> int.  Constant constructors are numbered in declaration order.
static int nbdpp_ocaml_mode_val(value v) {
  if (Is_block(v))
    return Int_val(Field(v, 0));
  switch (Int_val(v)) {
    case 0:
      return LIBNBD_MODE_IDLE;
    case 1:
      return LIBNBD_MODE_BUSY;
  }
  return -1;
}

static value nbdpp_ocaml_alloc_mode(int r) {
  CAMLparam0();
  CAMLlocal1(rv);
  switch (r) {
    case LIBNBD_MODE_IDLE:
      CAMLreturn(Val_int(0));
    case LIBNBD_MODE_BUSY:
      CAMLreturn(Val_int(1));
  }
  rv = caml_alloc(1, 0);
  Store_field(rv, 0, Val_int(r));
  CAMLreturn(rv);
}

// CMD_FLAG.t list <-> uint32_t.
static uint32_t nbdpp_ocaml_cmd_val(value list) {
  uint32_t r = 0;
  for (; list != Val_emptylist; list = Field(list, 1)) {
    const value f = Field(list, 0);
    if (Is_block(f)) {
      r |= (uint32_t)Long_val(Field(f, 0));
      continue;
    }
    switch (Int_val(f)) {
      case 0:
        r |= LIBNBD_CMD_FLAG_FUA;
        break;
      case 1:
        r |= LIBNBD_CMD_FLAG_DF;
        break;
    }
  }
  return r;
}

// STRICT.t list <-> uint32_t.
static uint32_t nbdpp_ocaml_strict_val(value list) {
  uint32_t r = 0;
  for (; list != Val_emptylist; list = Field(list, 1)) {
    const value f = Field(list, 0);
    if (Is_block(f)) {
      r |= (uint32_t)Long_val(Field(f, 0));
      continue;
    }
    switch (Int_val(f)) {
      case 0:
        r |= LIBNBD_STRICT_COMMANDS;
        break;
      case 1:
        r |= LIBNBD_STRICT_BOUNDS;
        break;
    }
  }
  return r;
}

// The list is in declaration order, unnamed bits last as one UNKNOWN.
static value nbdpp_ocaml_alloc_strict(uint32_t r) {
  CAMLparam0();
  CAMLlocal2(rv, item);
  rv = Val_emptylist;
  if ((r & ~LIBNBD_STRICT_MASK) != 0) {
    item = caml_alloc(1, 0);
    Store_field(item, 0, Val_long(r & ~LIBNBD_STRICT_MASK));
    rv = nbdpp_ocaml_cons(item, rv);
  }
  if ((r & LIBNBD_STRICT_BOUNDS) != 0)
    rv = nbdpp_ocaml_cons(Val_int(1), rv);
  if ((r & LIBNBD_STRICT_COMMANDS) != 0)
    rv = nbdpp_ocaml_cons(Val_int(0), rv);
  CAMLreturn(rv);
}

// nbd_completion_callback: runs the OCaml completion_callback; the caller holds the runtime lock.
static int nbdpp_ocaml_completion_invoke(struct nbdpp_ocaml_closure *cl, int *error) {
  CAMLparam0();
  CAMLlocalN(args, 1);
  CAMLlocal1(rv);
  int r;
  args[0] = nbdpp_ocaml_alloc_ref(*error);
  rv = caml_callbackN_exn(cl->fn, 1, args);
  if (Is_exception_result(rv)) {
    r = nbdpp_ocaml_callback_raised(Extract_exception(rv), error);
  } else {
    r = Int_val(rv);
    *error = Int_val(Field(args[0], 0));
  }
  CAMLreturnT(int, r);
}

static int nbdpp_ocaml_completion_trampoline(void *user_data, int *error) {
  bool reacquired;
  if (!nbdpp_ocaml_callback_enter(&reacquired))
    return nbdpp_ocaml_callback_refused(error);
  const int r = nbdpp_ocaml_completion_invoke(user_data, error);
  nbdpp_ocaml_callback_leave(reacquired);
  return r;
}

// Boxes fn (Val_unit: no callback) and keep (a value to hold alive, or Val_unit) for the C
// library; sets *oom instead when memory runs out.
static nbd_completion_callback nbdpp_ocaml_completion_closure(value fn, value keep, bool *oom) {
  nbd_completion_callback c = {NULL, NULL, NULL};
  if (fn == Val_unit && keep == Val_unit)
    return c;
  c.user_data = nbdpp_ocaml_closure_new(fn, keep);
  if (c.user_data == NULL) {
    *oom = true;
    return c;
  }
  if (fn != Val_unit)
    c.callback = nbdpp_ocaml_completion_trampoline;
  c.free = nbdpp_ocaml_closure_free;
  return c;
}

// nbd_chunk_callback: runs the OCaml chunk_callback; the caller holds the runtime lock.
static int nbdpp_ocaml_chunk_invoke(struct nbdpp_ocaml_closure *cl, const void *subbuf,
                                    size_t count, uint64_t offset, unsigned status, int *error) {
  CAMLparam0();
  CAMLlocalN(args, 4);
  CAMLlocal1(rv);
  int r;
  args[0] = nbdpp_ocaml_copy_bytes(subbuf, count);
  args[1] = caml_copy_int64((int64_t)offset);
  args[2] = Val_long(status);
  args[3] = nbdpp_ocaml_alloc_ref(*error);
  rv = caml_callbackN_exn(cl->fn, 4, args);
  if (Is_exception_result(rv)) {
    r = nbdpp_ocaml_callback_raised(Extract_exception(rv), error);
  } else {
    r = Int_val(rv);
    *error = Int_val(Field(args[3], 0));
  }
  CAMLreturnT(int, r);
}

static int nbdpp_ocaml_chunk_trampoline(void *user_data, const void *subbuf, size_t count,
                                        uint64_t offset, unsigned status, int *error) {
  bool reacquired;
  if (!nbdpp_ocaml_callback_enter(&reacquired))
    return nbdpp_ocaml_callback_refused(error);
  const int r = nbdpp_ocaml_chunk_invoke(user_data, subbuf, count, offset, status, error);
  nbdpp_ocaml_callback_leave(reacquired);
  return r;
}

// Boxes fn (Val_unit: no callback) and keep (a value to hold alive, or Val_unit) for the C
// library; sets *oom instead when memory runs out.
static nbd_chunk_callback nbdpp_ocaml_chunk_closure(value fn, value keep, bool *oom) {
  nbd_chunk_callback c = {NULL, NULL, NULL};
  if (fn == Val_unit && keep == Val_unit)
    return c;
  c.user_data = nbdpp_ocaml_closure_new(fn, keep);
  if (c.user_data == NULL) {
    *oom = true;
    return c;
  }
  if (fn != Val_unit)
    c.callback = nbdpp_ocaml_chunk_trampoline;
  c.free = nbdpp_ocaml_closure_free;
  return c;
}

// nbd_debug_callback: runs the OCaml debug_callback; the caller holds the runtime lock.
static int nbdpp_ocaml_debug_invoke(struct nbdpp_ocaml_closure *cl, const char *context,
                                    const char *msg) {
  CAMLparam0();
  CAMLlocalN(args, 2);
  CAMLlocal1(rv);
  int r;
  args[0] = nbdpp_ocaml_copy_string(context);
  args[1] = nbdpp_ocaml_copy_string(msg);
  rv = caml_callbackN_exn(cl->fn, 2, args);
  if (Is_exception_result(rv)) {
    r = nbdpp_ocaml_callback_raised(Extract_exception(rv), NULL);
  } else {
    r = Int_val(rv);
  }
  CAMLreturnT(int, r);
}

static int nbdpp_ocaml_debug_trampoline(void *user_data, const char *context, const char *msg) {
  bool reacquired;
  if (!nbdpp_ocaml_callback_enter(&reacquired))
    return nbdpp_ocaml_callback_refused(NULL);
  const int r = nbdpp_ocaml_debug_invoke(user_data, context, msg);
  nbdpp_ocaml_callback_leave(reacquired);
  return r;
}

// Boxes fn (Val_unit: no callback) and keep (a value to hold alive, or Val_unit) for the C
// library; sets *oom instead when memory runs out.
static nbd_debug_callback nbdpp_ocaml_debug_closure(value fn, value keep, bool *oom) {
  nbd_debug_callback c = {NULL, NULL, NULL};
  if (fn == Val_unit && keep == Val_unit)
    return c;
  c.user_data = nbdpp_ocaml_closure_new(fn, keep);
  if (c.user_data == NULL) {
    *oom = true;
    return c;
  }
  if (fn != Val_unit)
    c.callback = nbdpp_ocaml_debug_trampoline;
  c.free = nbdpp_ocaml_closure_free;
  return c;
}

// nbd_writer_callback: runs the OCaml writer_callback; the caller holds the runtime lock.
static int nbdpp_ocaml_writer_invoke(struct nbdpp_ocaml_closure *cl, const void *buf, size_t len) {
  CAMLparam0();
  CAMLlocalN(args, 1);
  CAMLlocal1(rv);
  int r;
  args[0] = nbdpp_ocaml_copy_bytes(buf, len);
  rv = caml_callbackN_exn(cl->fn, 1, args);
  if (Is_exception_result(rv)) {
    r = nbdpp_ocaml_callback_raised(Extract_exception(rv), NULL);
  } else {
    r = Int_val(rv);
  }
  CAMLreturnT(int, r);
}

static int nbdpp_ocaml_writer_trampoline(void *user_data, const void *buf, size_t len) {
  bool reacquired;
  if (!nbdpp_ocaml_callback_enter(&reacquired))
    return nbdpp_ocaml_callback_refused(NULL);
  const int r = nbdpp_ocaml_writer_invoke(user_data, buf, len);
  nbdpp_ocaml_callback_leave(reacquired);
  return r;
}

// Boxes fn (Val_unit: no callback) and keep (a value to hold alive, or Val_unit) for the C
// library; sets *oom instead when memory runs out.
static nbd_writer_callback nbdpp_ocaml_writer_closure(value fn, value keep, bool *oom) {
  nbd_writer_callback c = {NULL, NULL, NULL};
  if (fn == Val_unit && keep == Val_unit)
    return c;
  c.user_data = nbdpp_ocaml_closure_new(fn, keep);
  if (c.user_data == NULL) {
    *oom = true;
    return c;
  }
  if (fn != Val_unit)
    c.callback = nbdpp_ocaml_writer_trampoline;
  c.free = nbdpp_ocaml_closure_free;
  return c;
}

// nbd_extent64_callback: runs the OCaml extent64_callback; the caller holds the runtime lock.
static int nbdpp_ocaml_extent64_invoke(struct nbdpp_ocaml_closure *cl, const char *metacontext,
                                       uint64_t offset, nbd_extent *entries, size_t nr_entries,
                                       int *error) {
  CAMLparam0();
  CAMLlocalN(args, 4);
  CAMLlocal1(rv);
  int r;
  args[0] = nbdpp_ocaml_copy_string(metacontext);
  args[1] = caml_copy_int64((int64_t)offset);
  args[2] = nbdpp_ocaml_copy_extent64_array(entries, nr_entries);
  args[3] = nbdpp_ocaml_alloc_ref(*error);
  rv = caml_callbackN_exn(cl->fn, 4, args);
  if (Is_exception_result(rv)) {
    r = nbdpp_ocaml_callback_raised(Extract_exception(rv), error);
  } else {
    r = Int_val(rv);
    *error = Int_val(Field(args[3], 0));
  }
  CAMLreturnT(int, r);
}

static int nbdpp_ocaml_extent64_trampoline(void *user_data, const char *metacontext,
                                           uint64_t offset, nbd_extent *entries, size_t nr_entries,
                                           int *error) {
  bool reacquired;
  if (!nbdpp_ocaml_callback_enter(&reacquired))
    return nbdpp_ocaml_callback_refused(error);
  const int r = nbdpp_ocaml_extent64_invoke(user_data, metacontext, offset, entries, nr_entries,
                                            error);
  nbdpp_ocaml_callback_leave(reacquired);
  return r;
}

// Boxes fn (Val_unit: no callback) and keep (a value to hold alive, or Val_unit) for the C
// library; sets *oom instead when memory runs out.
static nbd_extent64_callback nbdpp_ocaml_extent64_closure(value fn, value keep, bool *oom) {
  nbd_extent64_callback c = {NULL, NULL, NULL};
  if (fn == Val_unit && keep == Val_unit)
    return c;
  c.user_data = nbdpp_ocaml_closure_new(fn, keep);
  if (c.user_data == NULL) {
    *oom = true;
    return c;
  }
  if (fn != Val_unit)
    c.callback = nbdpp_ocaml_extent64_trampoline;
  c.free = nbdpp_ocaml_closure_free;
  return c;
}

// nbd_close: close a handle
value nbdpp_ocaml_close(value hv);
value nbdpp_ocaml_close(value hv) {
  CAMLparam1(hv);
  CAMLlocal1(rv);
  struct nbd_handle *h = nbdpp_ocaml_take_handle(hv);
  nbdpp_ocaml_release();
  nbd_close(h);
  nbdpp_ocaml_acquire();
  nbdpp_ocaml_drop_pending();
  rv = Val_unit;
  CAMLreturn(rv);
}

// nbd_create: create a handle
value nbdpp_ocaml_create(value unitv);
value nbdpp_ocaml_create(value unitv) {
  CAMLparam1(unitv);
  CAMLlocal1(rv);
  struct nbdpp_ocaml_error failure = {NULL, 0};
  nbdpp_ocaml_release();
  struct nbd_handle *r = nbd_create();
  if (r == NULL)
    nbdpp_ocaml_save_error(&failure);
  nbdpp_ocaml_acquire();
  nbdpp_ocaml_raise_pending(&failure);
  if (r == NULL)
    nbdpp_ocaml_raise_error(&failure, "nbd_create");
  rv = nbdpp_ocaml_alloc_handle(r);
  CAMLreturn(rv);
}

// nbd_set_mode: choose the mode
value nbdpp_ocaml_set_mode(value hv, value modev);
value nbdpp_ocaml_set_mode(value hv, value modev) {
  CAMLparam2(hv, modev);
  CAMLlocal1(rv);
  struct nbd_handle *h = nbdpp_ocaml_handle(hv, "nbd_set_mode");
  int mode = nbdpp_ocaml_mode_val(modev);
  struct nbdpp_ocaml_error failure = {NULL, 0};
  nbdpp_ocaml_release();
  int r = nbd_set_mode(h, mode);
  if (r == -1)
    nbdpp_ocaml_save_error(&failure);
  nbdpp_ocaml_acquire();
  nbdpp_ocaml_raise_pending(&failure);
  if (r == -1)
    nbdpp_ocaml_raise_error(&failure, "nbd_set_mode");
  rv = Val_unit;
  CAMLreturn(rv);
}

// nbd_get_mode: read the mode
value nbdpp_ocaml_get_mode(value hv);
value nbdpp_ocaml_get_mode(value hv) {
  CAMLparam1(hv);
  CAMLlocal1(rv);
  struct nbd_handle *h = nbdpp_ocaml_handle(hv, "nbd_get_mode");
  nbdpp_ocaml_release();
  int r = nbd_get_mode(h);
  nbdpp_ocaml_acquire();
  nbdpp_ocaml_raise_pending(NULL);
  rv = nbdpp_ocaml_alloc_mode(r);
  CAMLreturn(rv);
}

// nbd_get_version: the library version
value nbdpp_ocaml_get_version(value hv);
value nbdpp_ocaml_get_version(value hv) {
  CAMLparam1(hv);
  CAMLlocal1(rv);
  struct nbd_handle *h = nbdpp_ocaml_handle(hv, "nbd_get_version");
  const char *r = nbd_get_version(h);
  nbdpp_ocaml_raise_pending(NULL);
  rv = caml_copy_string(r);
  CAMLreturn(rv);
}

// nbd_pread: read data
value nbdpp_ocaml_pread(value flagsv, value hv, value bufv, value offsetv);
value nbdpp_ocaml_pread(value flagsv, value hv, value bufv, value offsetv) {
  CAMLparam4(flagsv, hv, bufv, offsetv);
  CAMLlocal1(rv);
  struct nbd_handle *h = nbdpp_ocaml_handle(hv, "nbd_pread");
  size_t count = caml_string_length(bufv);
  uint64_t offset = (uint64_t)Int64_val(offsetv);
  uint32_t flags = Is_none(flagsv) ? 0 : nbdpp_ocaml_cmd_val(Some_val(flagsv));
  bool oom = false;
  void *buf = nbdpp_ocaml_malloc(bufv, &oom);
  if (oom) {
    free(buf);
    caml_raise_out_of_memory();
  }
  struct nbdpp_ocaml_error failure = {NULL, 0};
  nbdpp_ocaml_release();
  int r = nbd_pread(h, buf, count, offset, flags);
  if (r == -1)
    nbdpp_ocaml_save_error(&failure);
  nbdpp_ocaml_acquire();
  if (r != -1)
    memcpy(Bytes_val(bufv), buf, count);
  free(buf);
  nbdpp_ocaml_raise_pending(&failure);
  if (r == -1)
    nbdpp_ocaml_raise_error(&failure, "nbd_pread");
  rv = Val_unit;
  CAMLreturn(rv);
}

// nbd_aio_pread: start reading data
value nbdpp_ocaml_aio_pread(value completion_callbackv, value flagsv, value hv, value bufv,
                            value offsetv, value chunk_callbackv);
value nbdpp_ocaml_aio_pread(value completion_callbackv, value flagsv, value hv, value bufv,
                            value offsetv, value chunk_callbackv) {
  CAMLparam5(completion_callbackv, flagsv, hv, bufv, offsetv);
  CAMLxparam1(chunk_callbackv);
  CAMLlocal1(rv);
  struct nbd_handle *h = nbdpp_ocaml_handle(hv, "nbd_aio_pread");
  size_t count = nbdpp_ocaml_buffer_size(bufv);
  void *buf = nbdpp_ocaml_buffer_data(bufv);
  uint64_t offset = (uint64_t)Int64_val(offsetv);
  uint32_t flags = Is_none(flagsv) ? 0 : nbdpp_ocaml_cmd_val(Some_val(flagsv));
  bool oom = false;
  nbd_chunk_callback chunk_callback = nbdpp_ocaml_chunk_closure(chunk_callbackv, Val_unit, &oom);
  nbd_completion_callback completion_callback =
      nbdpp_ocaml_completion_closure(nbdpp_ocaml_option_fn(completion_callbackv), bufv, &oom);
  if (oom) {
    nbdpp_ocaml_closure_free(chunk_callback.user_data);
    nbdpp_ocaml_closure_free(completion_callback.user_data);
    caml_raise_out_of_memory();
  }
  struct nbdpp_ocaml_error failure = {NULL, 0};
  nbdpp_ocaml_release();
  int64_t r = nbd_aio_pread(h, buf, count, offset, chunk_callback, completion_callback, flags);
  if (r == -1)
    nbdpp_ocaml_save_error(&failure);
  nbdpp_ocaml_acquire();
  nbdpp_ocaml_raise_pending(&failure);
  if (r == -1)
    nbdpp_ocaml_raise_error(&failure, "nbd_aio_pread");
  rv = caml_copy_int64(r);
  CAMLreturn(rv);
}

value nbdpp_ocaml_aio_pread_byte(value *argv, int argn);
value nbdpp_ocaml_aio_pread_byte(value *argv, int argn) {
  (void)argn;
  return nbdpp_ocaml_aio_pread(argv[0], argv[1], argv[2], argv[3], argv[4], argv[5]);
}

// nbd_set_debug_callback: set the debug callback
value nbdpp_ocaml_set_debug_callback(value hv, value debug_callbackv);
value nbdpp_ocaml_set_debug_callback(value hv, value debug_callbackv) {
  CAMLparam2(hv, debug_callbackv);
  CAMLlocal1(rv);
  struct nbd_handle *h = nbdpp_ocaml_handle(hv, "nbd_set_debug_callback");
  bool oom = false;
  nbd_debug_callback debug_callback = nbdpp_ocaml_debug_closure(debug_callbackv, Val_unit, &oom);
  if (oom) {
    nbdpp_ocaml_closure_free(debug_callback.user_data);
    caml_raise_out_of_memory();
  }
  struct nbdpp_ocaml_error failure = {NULL, 0};
  nbdpp_ocaml_release();
  int r = nbd_set_debug_callback(h, debug_callback);
  if (r == -1)
    nbdpp_ocaml_save_error(&failure);
  nbdpp_ocaml_acquire();
  nbdpp_ocaml_raise_pending(&failure);
  if (r == -1)
    nbdpp_ocaml_raise_error(&failure, "nbd_set_debug_callback");
  rv = Val_unit;
  CAMLreturn(rv);
}

// nbd_block_status_64: describe a range
value nbdpp_ocaml_block_status_64(value hv, value countv, value offsetv, value contextsv,
                                  value extent64_callbackv);
value nbdpp_ocaml_block_status_64(value hv, value countv, value offsetv, value contextsv,
                                  value extent64_callbackv) {
  CAMLparam5(hv, countv, offsetv, contextsv, extent64_callbackv);
  CAMLlocal1(rv);
  struct nbd_handle *h = nbdpp_ocaml_handle(hv, "nbd_block_status_64");
  uint64_t count = (uint64_t)Int64_val(countv);
  uint64_t offset = (uint64_t)Int64_val(offsetv);
  bool oom = false;
  char **contexts = nbdpp_ocaml_string_list(contextsv, &oom);
  nbd_extent64_callback extent64_callback =
      nbdpp_ocaml_extent64_closure(extent64_callbackv, Val_unit, &oom);
  if (oom) {
    nbdpp_ocaml_closure_free(extent64_callback.user_data);
    nbdpp_ocaml_free_string_list(contexts);
    caml_raise_out_of_memory();
  }
  struct nbdpp_ocaml_error failure = {NULL, 0};
  nbdpp_ocaml_release();
  int r = nbd_block_status_64(h, count, offset, contexts, extent64_callback);
  if (r == -1)
    nbdpp_ocaml_save_error(&failure);
  nbdpp_ocaml_acquire();
  nbdpp_ocaml_free_string_list(contexts);
  nbdpp_ocaml_raise_pending(&failure);
  if (r == -1)
    nbdpp_ocaml_raise_error(&failure, "nbd_block_status_64");
  rv = Val_unit;
  CAMLreturn(rv);
}

// nbd_get_name: get the handle name
value nbdpp_ocaml_get_name(value hv);
value nbdpp_ocaml_get_name(value hv) {
  CAMLparam1(hv);
  CAMLlocal1(rv);
  struct nbd_handle *h = nbdpp_ocaml_handle(hv, "nbd_get_name");
  struct nbdpp_ocaml_error failure = {NULL, 0};
  char *r = nbd_get_name(h);
  if (r == NULL)
    nbdpp_ocaml_save_error(&failure);
  if (r != NULL) {
    rv = caml_copy_string(r);
    free(r);
  }
  nbdpp_ocaml_raise_pending(&failure);
  if (r == NULL)
    nbdpp_ocaml_raise_error(&failure, "nbd_get_name");
  CAMLreturn(rv);
}

// nbd_stats_bytes_sent: count bytes sent
value nbdpp_ocaml_stats_bytes_sent(value hv);
value nbdpp_ocaml_stats_bytes_sent(value hv) {
  CAMLparam1(hv);
  CAMLlocal1(rv);
  struct nbd_handle *h = nbdpp_ocaml_handle(hv, "nbd_stats_bytes_sent");
  nbdpp_ocaml_release();
  uint64_t r = nbd_stats_bytes_sent(h);
  nbdpp_ocaml_acquire();
  nbdpp_ocaml_raise_pending(NULL);
  rv = caml_copy_int64((int64_t)r);
  CAMLreturn(rv);
}

// nbd_connect_vsock: connect over AF_VSOCK
value nbdpp_ocaml_connect_vsock(value hv, value cidv, value portv);
value nbdpp_ocaml_connect_vsock(value hv, value cidv, value portv) {
  CAMLparam3(hv, cidv, portv);
  CAMLlocal1(rv);
  struct nbd_handle *h = nbdpp_ocaml_handle(hv, "nbd_connect_vsock");
  int64_t cid64 = Int64_val(cidv);
  if (cid64 < 0 || cid64 > (int64_t)UINT32_MAX)
    caml_invalid_argument("nbd_connect_vsock: cid out of range");
  uint32_t cid = (uint32_t)cid64;
  int64_t port64 = Int64_val(portv);
  if (port64 < 0 || port64 > (int64_t)UINT32_MAX)
    caml_invalid_argument("nbd_connect_vsock: port out of range");
  uint32_t port = (uint32_t)port64;
  struct nbdpp_ocaml_error failure = {NULL, 0};
  nbdpp_ocaml_release();
  int r = nbd_connect_vsock(h, cid, port);
  if (r == -1)
    nbdpp_ocaml_save_error(&failure);
  nbdpp_ocaml_acquire();
  nbdpp_ocaml_raise_pending(&failure);
  if (r == -1)
    nbdpp_ocaml_raise_error(&failure, "nbd_connect_vsock");
  rv = Val_unit;
  CAMLreturn(rv);
}

// nbd_set_debug: turn debug messages on or off
value nbdpp_ocaml_set_debug(value hv, value debugv);
value nbdpp_ocaml_set_debug(value hv, value debugv) {
  CAMLparam2(hv, debugv);
  CAMLlocal1(rv);
  struct nbd_handle *h = nbdpp_ocaml_handle(hv, "nbd_set_debug");
  bool debug = Bool_val(debugv);
  struct nbdpp_ocaml_error failure = {NULL, 0};
  nbdpp_ocaml_release();
  int r = nbd_set_debug(h, debug);
  if (r == -1)
    nbdpp_ocaml_save_error(&failure);
  nbdpp_ocaml_acquire();
  nbdpp_ocaml_raise_pending(&failure);
  if (r == -1)
    nbdpp_ocaml_raise_error(&failure, "nbd_set_debug");
  rv = Val_unit;
  CAMLreturn(rv);
}

// nbd_get_debug: whether debug messages are on
value nbdpp_ocaml_get_debug(value hv);
value nbdpp_ocaml_get_debug(value hv) {
  CAMLparam1(hv);
  CAMLlocal1(rv);
  struct nbd_handle *h = nbdpp_ocaml_handle(hv, "nbd_get_debug");
  nbdpp_ocaml_release();
  int r = nbd_get_debug(h);
  nbdpp_ocaml_acquire();
  nbdpp_ocaml_raise_pending(NULL);
  rv = Val_bool(r);
  CAMLreturn(rv);
}

// nbd_set_handle_name: name the handle
value nbdpp_ocaml_set_handle_name(value hv, value handle_namev);
value nbdpp_ocaml_set_handle_name(value hv, value handle_namev) {
  CAMLparam2(hv, handle_namev);
  CAMLlocal1(rv);
  struct nbd_handle *h = nbdpp_ocaml_handle(hv, "nbd_set_handle_name");
  bool oom = false;
  char *handle_name = nbdpp_ocaml_strdup(handle_namev, &oom);
  if (oom) {
    free(handle_name);
    caml_raise_out_of_memory();
  }
  struct nbdpp_ocaml_error failure = {NULL, 0};
  nbdpp_ocaml_release();
  int r = nbd_set_handle_name(h, handle_name);
  if (r == -1)
    nbdpp_ocaml_save_error(&failure);
  nbdpp_ocaml_acquire();
  free(handle_name);
  nbdpp_ocaml_raise_pending(&failure);
  if (r == -1)
    nbdpp_ocaml_raise_error(&failure, "nbd_set_handle_name");
  rv = Val_unit;
  CAMLreturn(rv);
}

// nbd_set_strict_mode: choose the client-side checks
value nbdpp_ocaml_set_strict_mode(value hv, value flagsv);
value nbdpp_ocaml_set_strict_mode(value hv, value flagsv) {
  CAMLparam2(hv, flagsv);
  CAMLlocal1(rv);
  struct nbd_handle *h = nbdpp_ocaml_handle(hv, "nbd_set_strict_mode");
  uint32_t flags = nbdpp_ocaml_strict_val(flagsv);
  struct nbdpp_ocaml_error failure = {NULL, 0};
  nbdpp_ocaml_release();
  int r = nbd_set_strict_mode(h, flags);
  if (r == -1)
    nbdpp_ocaml_save_error(&failure);
  nbdpp_ocaml_acquire();
  nbdpp_ocaml_raise_pending(&failure);
  if (r == -1)
    nbdpp_ocaml_raise_error(&failure, "nbd_set_strict_mode");
  rv = Val_unit;
  CAMLreturn(rv);
}

// nbd_get_strict_mode: the client-side checks in force
value nbdpp_ocaml_get_strict_mode(value hv);
value nbdpp_ocaml_get_strict_mode(value hv) {
  CAMLparam1(hv);
  CAMLlocal1(rv);
  struct nbd_handle *h = nbdpp_ocaml_handle(hv, "nbd_get_strict_mode");
  nbdpp_ocaml_release();
  uint32_t r = nbd_get_strict_mode(h);
  nbdpp_ocaml_acquire();
  nbdpp_ocaml_raise_pending(NULL);
  rv = nbdpp_ocaml_alloc_strict(r);
  CAMLreturn(rv);
}

// nbd_set_private_data: keep a value in the handle
value nbdpp_ocaml_set_private_data(value hv, value private_datav);
value nbdpp_ocaml_set_private_data(value hv, value private_datav) {
  CAMLparam2(hv, private_datav);
  CAMLlocal1(rv);
  struct nbd_handle *h = nbdpp_ocaml_handle(hv, "nbd_set_private_data");
  uintptr_t private_data = (uintptr_t)Long_val(private_datav);
  uintptr_t r = nbd_set_private_data(h, private_data);
  nbdpp_ocaml_raise_pending(NULL);
  rv = Val_long((intnat)r);
  CAMLreturn(rv);
}

// nbd_connect_unix: connect over a Unix domain socket
value nbdpp_ocaml_connect_unix(value hv, value unixsocketv);
value nbdpp_ocaml_connect_unix(value hv, value unixsocketv) {
  CAMLparam2(hv, unixsocketv);
  CAMLlocal1(rv);
  struct nbd_handle *h = nbdpp_ocaml_handle(hv, "nbd_connect_unix");
  bool oom = false;
  char *unixsocket = nbdpp_ocaml_strdup(unixsocketv, &oom);
  if (oom) {
    free(unixsocket);
    caml_raise_out_of_memory();
  }
  struct nbdpp_ocaml_error failure = {NULL, 0};
  nbdpp_ocaml_release();
  int r = nbd_connect_unix(h, unixsocket);
  if (r == -1)
    nbdpp_ocaml_save_error(&failure);
  nbdpp_ocaml_acquire();
  free(unixsocket);
  nbdpp_ocaml_raise_pending(&failure);
  if (r == -1)
    nbdpp_ocaml_raise_error(&failure, "nbd_connect_unix");
  rv = Val_unit;
  CAMLreturn(rv);
}

// nbd_connect_socket: connect over a connected socket
value nbdpp_ocaml_connect_socket(value hv, value sockv);
value nbdpp_ocaml_connect_socket(value hv, value sockv) {
  CAMLparam2(hv, sockv);
  CAMLlocal1(rv);
  struct nbd_handle *h = nbdpp_ocaml_handle(hv, "nbd_connect_socket");
  int sock = Int_val(sockv);
  struct nbdpp_ocaml_error failure = {NULL, 0};
  nbdpp_ocaml_release();
  int r = nbd_connect_socket(h, sock);
  if (r == -1)
    nbdpp_ocaml_save_error(&failure);
  nbdpp_ocaml_acquire();
  nbdpp_ocaml_raise_pending(&failure);
  if (r == -1)
    nbdpp_ocaml_raise_error(&failure, "nbd_connect_socket");
  rv = Val_unit;
  CAMLreturn(rv);
}

// nbd_aio_connect: start connecting to a socket address
value nbdpp_ocaml_aio_connect(value hv, value addrv);
value nbdpp_ocaml_aio_connect(value hv, value addrv) {
  CAMLparam2(hv, addrv);
  CAMLlocal1(rv);
  struct nbd_handle *h = nbdpp_ocaml_handle(hv, "nbd_aio_connect");
  union sock_addr_union addr_u;
  socklen_param_type addrlen;
  get_sockaddr(addrv, &addr_u, &addrlen);
  struct nbdpp_ocaml_error failure = {NULL, 0};
  nbdpp_ocaml_release();
  int r = nbd_aio_connect(h, &addr_u.s_gen, (socklen_t)addrlen);
  if (r == -1)
    nbdpp_ocaml_save_error(&failure);
  nbdpp_ocaml_acquire();
  nbdpp_ocaml_raise_pending(&failure);
  if (r == -1)
    nbdpp_ocaml_raise_error(&failure, "nbd_aio_connect");
  rv = Val_unit;
  CAMLreturn(rv);
}

// nbd_get_protocol: the protocol the server speaks
value nbdpp_ocaml_get_protocol(value hv);
value nbdpp_ocaml_get_protocol(value hv) {
  CAMLparam1(hv);
  CAMLlocal1(rv);
  struct nbd_handle *h = nbdpp_ocaml_handle(hv, "nbd_get_protocol");
  struct nbdpp_ocaml_error failure = {NULL, 0};
  nbdpp_ocaml_release();
  const char *r = nbd_get_protocol(h);
  if (r == NULL)
    nbdpp_ocaml_save_error(&failure);
  nbdpp_ocaml_acquire();
  nbdpp_ocaml_raise_pending(&failure);
  if (r == NULL)
    nbdpp_ocaml_raise_error(&failure, "nbd_get_protocol");
  rv = caml_copy_string(r);
  CAMLreturn(rv);
}

// nbd_get_size: the size of the export
value nbdpp_ocaml_get_size(value hv);
value nbdpp_ocaml_get_size(value hv) {
  CAMLparam1(hv);
  CAMLlocal1(rv);
  struct nbd_handle *h = nbdpp_ocaml_handle(hv, "nbd_get_size");
  struct nbdpp_ocaml_error failure = {NULL, 0};
  nbdpp_ocaml_release();
  int64_t r = nbd_get_size(h);
  if (r == -1)
    nbdpp_ocaml_save_error(&failure);
  nbdpp_ocaml_acquire();
  nbdpp_ocaml_raise_pending(&failure);
  if (r == -1)
    nbdpp_ocaml_raise_error(&failure, "nbd_get_size");
  rv = caml_copy_int64(r);
  CAMLreturn(rv);
}

// nbd_get_nr_meta_contexts: count the metadata contexts
value nbdpp_ocaml_get_nr_meta_contexts(value hv);
value nbdpp_ocaml_get_nr_meta_contexts(value hv) {
  CAMLparam1(hv);
  CAMLlocal1(rv);
  struct nbd_handle *h = nbdpp_ocaml_handle(hv, "nbd_get_nr_meta_contexts");
  struct nbdpp_ocaml_error failure = {NULL, 0};
  nbdpp_ocaml_release();
  ssize_t r = nbd_get_nr_meta_contexts(h);
  if (r == -1)
    nbdpp_ocaml_save_error(&failure);
  nbdpp_ocaml_acquire();
  nbdpp_ocaml_raise_pending(&failure);
  if (r == -1)
    nbdpp_ocaml_raise_error(&failure, "nbd_get_nr_meta_contexts");
  rv = Val_long(r);
  CAMLreturn(rv);
}

// nbd_get_meta_context: a metadata context by index
value nbdpp_ocaml_get_meta_context(value hv, value iv);
value nbdpp_ocaml_get_meta_context(value hv, value iv) {
  CAMLparam2(hv, iv);
  CAMLlocal1(rv);
  struct nbd_handle *h = nbdpp_ocaml_handle(hv, "nbd_get_meta_context");
  size_t i = (size_t)Long_val(iv);
  struct nbdpp_ocaml_error failure = {NULL, 0};
  nbdpp_ocaml_release();
  char *r = nbd_get_meta_context(h, i);
  if (r == NULL)
    nbdpp_ocaml_save_error(&failure);
  nbdpp_ocaml_acquire();
  if (r != NULL) {
    rv = caml_copy_string(r);
    free(r);
  }
  nbdpp_ocaml_raise_pending(&failure);
  if (r == NULL)
    nbdpp_ocaml_raise_error(&failure, "nbd_get_meta_context");
  CAMLreturn(rv);
}

// nbd_pwrite: write data
value nbdpp_ocaml_pwrite(value flagsv, value hv, value bufv, value offsetv);
value nbdpp_ocaml_pwrite(value flagsv, value hv, value bufv, value offsetv) {
  CAMLparam4(flagsv, hv, bufv, offsetv);
  CAMLlocal1(rv);
  struct nbd_handle *h = nbdpp_ocaml_handle(hv, "nbd_pwrite");
  size_t count = caml_string_length(bufv);
  uint64_t offset = (uint64_t)Int64_val(offsetv);
  uint32_t flags = Is_none(flagsv) ? 0 : nbdpp_ocaml_cmd_val(Some_val(flagsv));
  bool oom = false;
  void *buf = nbdpp_ocaml_copy_in(bufv, &oom);
  if (oom) {
    free(buf);
    caml_raise_out_of_memory();
  }
  struct nbdpp_ocaml_error failure = {NULL, 0};
  nbdpp_ocaml_release();
  int r = nbd_pwrite(h, buf, count, offset, flags);
  if (r == -1)
    nbdpp_ocaml_save_error(&failure);
  nbdpp_ocaml_acquire();
  free(buf);
  nbdpp_ocaml_raise_pending(&failure);
  if (r == -1)
    nbdpp_ocaml_raise_error(&failure, "nbd_pwrite");
  rv = Val_unit;
  CAMLreturn(rv);
}

// nbd_aio_pwrite: start writing data
value nbdpp_ocaml_aio_pwrite(value completion_callbackv, value flagsv, value hv, value bufv,
                             value offsetv);
value nbdpp_ocaml_aio_pwrite(value completion_callbackv, value flagsv, value hv, value bufv,
                             value offsetv) {
  CAMLparam5(completion_callbackv, flagsv, hv, bufv, offsetv);
  CAMLlocal1(rv);
  struct nbd_handle *h = nbdpp_ocaml_handle(hv, "nbd_aio_pwrite");
  size_t count = nbdpp_ocaml_buffer_size(bufv);
  void *buf = nbdpp_ocaml_buffer_data(bufv);
  uint64_t offset = (uint64_t)Int64_val(offsetv);
  uint32_t flags = Is_none(flagsv) ? 0 : nbdpp_ocaml_cmd_val(Some_val(flagsv));
  bool oom = false;
  nbd_completion_callback completion_callback =
      nbdpp_ocaml_completion_closure(nbdpp_ocaml_option_fn(completion_callbackv), bufv, &oom);
  if (oom) {
    nbdpp_ocaml_closure_free(completion_callback.user_data);
    caml_raise_out_of_memory();
  }
  struct nbdpp_ocaml_error failure = {NULL, 0};
  nbdpp_ocaml_release();
  int64_t r = nbd_aio_pwrite(h, buf, count, offset, completion_callback, flags);
  if (r == -1)
    nbdpp_ocaml_save_error(&failure);
  nbdpp_ocaml_acquire();
  nbdpp_ocaml_raise_pending(&failure);
  if (r == -1)
    nbdpp_ocaml_raise_error(&failure, "nbd_aio_pwrite");
  rv = caml_copy_int64(r);
  CAMLreturn(rv);
}

// nbd_poll: wait for the handle
value nbdpp_ocaml_poll(value hv, value timeoutv);
value nbdpp_ocaml_poll(value hv, value timeoutv) {
  CAMLparam2(hv, timeoutv);
  CAMLlocal1(rv);
  struct nbd_handle *h = nbdpp_ocaml_handle(hv, "nbd_poll");
  int timeout = Int_val(timeoutv);
  struct nbdpp_ocaml_error failure = {NULL, 0};
  nbdpp_ocaml_release();
  int r = nbd_poll(h, timeout);
  if (r == -1)
    nbdpp_ocaml_save_error(&failure);
  nbdpp_ocaml_acquire();
  nbdpp_ocaml_raise_pending(&failure);
  if (r == -1)
    nbdpp_ocaml_raise_error(&failure, "nbd_poll");
  rv = Val_int(r);
  CAMLreturn(rv);
}

// nbd_aio_get_fd: the socket of the handle
value nbdpp_ocaml_aio_get_fd(value hv);
value nbdpp_ocaml_aio_get_fd(value hv) {
  CAMLparam1(hv);
  CAMLlocal1(rv);
  struct nbd_handle *h = nbdpp_ocaml_handle(hv, "nbd_aio_get_fd");
  struct nbdpp_ocaml_error failure = {NULL, 0};
  nbdpp_ocaml_release();
  int r = nbd_aio_get_fd(h);
  if (r == -1)
    nbdpp_ocaml_save_error(&failure);
  nbdpp_ocaml_acquire();
  nbdpp_ocaml_raise_pending(&failure);
  if (r == -1)
    nbdpp_ocaml_raise_error(&failure, "nbd_aio_get_fd");
  rv = Val_int(r);
  CAMLreturn(rv);
}

// nbd_aio_get_direction: what the handle waits for
value nbdpp_ocaml_aio_get_direction(value hv);
value nbdpp_ocaml_aio_get_direction(value hv) {
  CAMLparam1(hv);
  CAMLlocal1(rv);
  struct nbd_handle *h = nbdpp_ocaml_handle(hv, "nbd_aio_get_direction");
  unsigned r = nbd_aio_get_direction(h);
  nbdpp_ocaml_raise_pending(NULL);
  rv = Val_long(r);
  CAMLreturn(rv);
}

// nbd_set_concurrent_writer: send outgoing data through an application thread
value nbdpp_ocaml_set_concurrent_writer(value hv, value writerv);
value nbdpp_ocaml_set_concurrent_writer(value hv, value writerv) {
  CAMLparam2(hv, writerv);
  CAMLlocal1(rv);
  struct nbd_handle *h = nbdpp_ocaml_handle(hv, "nbd_set_concurrent_writer");
  bool oom = false;
  nbd_writer_callback writer = nbdpp_ocaml_writer_closure(writerv, Val_unit, &oom);
  if (oom) {
    nbdpp_ocaml_closure_free(writer.user_data);
    caml_raise_out_of_memory();
  }
  struct nbdpp_ocaml_error failure = {NULL, 0};
  nbdpp_ocaml_release();
  int r = nbd_set_concurrent_writer(h, writer);
  if (r == -1)
    nbdpp_ocaml_save_error(&failure);
  nbdpp_ocaml_acquire();
  nbdpp_ocaml_raise_pending(&failure);
  if (r == -1)
    nbdpp_ocaml_raise_error(&failure, "nbd_set_concurrent_writer");
  rv = Val_unit;
  CAMLreturn(rv);
}

// nbd_concurrent_writer_error: report a send failure from the concurrent writer
value nbdpp_ocaml_concurrent_writer_error(value hv, value errv);
value nbdpp_ocaml_concurrent_writer_error(value hv, value errv) {
  CAMLparam2(hv, errv);
  CAMLlocal1(rv);
  struct nbd_handle *h = nbdpp_ocaml_handle(hv, "nbd_concurrent_writer_error");
  int err = Int_val(errv);
  struct nbdpp_ocaml_error failure = {NULL, 0};
  int r = nbd_concurrent_writer_error(h, err);
  if (r == -1)
    nbdpp_ocaml_save_error(&failure);
  nbdpp_ocaml_raise_pending(&failure);
  if (r == -1)
    nbdpp_ocaml_raise_error(&failure, "nbd_concurrent_writer_error");
  rv = Val_unit;
  CAMLreturn(rv);
}
