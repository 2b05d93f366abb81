// nbdpp_ocaml.h: helpers shared by the generated OCaml stubs (nbd_stubs.c), in nbdpp_runtime.c.
//
// Runtime lock protocol.  A stub holds the OCaml runtime lock when it starts.  Around a call that
// may block it releases the lock (nbdpp_ocaml_release / nbdpp_ocaml_acquire), and a thread-local
// flag records that.  A callback or free hook the C library runs in that thread takes the lock
// back for as long as it needs OCaml, and gives it up again.  When no stub of this thread has
// released the lock (an unlocked call, or the finaliser), callbacks and free hooks run as they
// are.  Finalisers run inside the garbage collector, where OCaml code must not run: callbacks
// fired by the nbd_close of a finaliser are refused.
#ifndef NBDPP_OCAML_H
#define NBDPP_OCAML_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include <caml/mlvalues.h>

#include <libnbd.h>

// The user_data of every closure given to the C library: two generational global roots, the
// OCaml function (Val_unit for a closure with only a free hook) and a value to keep alive until
// the closure is freed (a Buffer.t of an aio command, or Val_unit).
struct nbdpp_ocaml_closure {
  value fn;
  value keep;
};

// Boxes fn and keep; NULL when memory runs out.  Freed only by nbdpp_ocaml_closure_free.
void *nbdpp_ocaml_closure_new(value fn, value keep);
// The C closure's free hook: releases the roots and the box; NULL is accepted.
void nbdpp_ocaml_closure_free(void *user_data);
// The function in an optional callback argument: Val_unit for None.
value nbdpp_ocaml_option_fn(value opt);

// Callback trampolines: enter returns false when OCaml code must not run (inside a finaliser);
// the trampoline then returns nbdpp_ocaml_callback_refused(error).  Otherwise it calls OCaml and
// then leave(reacquired).
bool nbdpp_ocaml_callback_enter(bool *reacquired);
void nbdpp_ocaml_callback_leave(bool reacquired);
int nbdpp_ocaml_callback_refused(int *error);
// A callback raised exn: keeps it (the first one) for the stub to raise, stores an errno into
// *error if error is not NULL and *error is 0, sets errno, and returns -1.  The errno is the
// Unix_error's own, or ECANCELED for other exceptions.
int nbdpp_ocaml_callback_raised(value exn, int *error);

// Values for callback arguments (a NULL string becomes "").
value nbdpp_ocaml_copy_string(const char *s);
value nbdpp_ocaml_copy_bytes(const void *data, size_t len);
value nbdpp_ocaml_copy_uint32_array(const uint32_t *data, size_t len);
// An array of (length, flags) int64 pairs, NBD.extent.
value nbdpp_ocaml_copy_extent64_array(const nbd_extent *data, size_t len);
value nbdpp_ocaml_alloc_ref(int v);
value nbdpp_ocaml_cons(value head, value tail);

// Handles: a custom block holding the nbd_handle pointer, NULL once closed.
value nbdpp_ocaml_alloc_handle(struct nbd_handle *h);
// The handle's pointer; raises NBD.Closed naming call if it was closed.
struct nbd_handle *nbdpp_ocaml_handle(value hv, const char *call);
// The handle's pointer (NULL if already closed), leaving the block closed.
struct nbd_handle *nbdpp_ocaml_take_handle(value hv);

// Copies out of the OCaml heap, which may move while the runtime lock is released.  Each
// returns NULL and sets *oom when memory runs out; release with free (string lists with
// nbdpp_ocaml_free_string_list, which accepts NULL).
char *nbdpp_ocaml_strdup(value s, bool *oom);
char **nbdpp_ocaml_string_list(value list, bool *oom);
void nbdpp_ocaml_free_string_list(char **list);
void *nbdpp_ocaml_copy_in(value bytes, bool *oom);
void *nbdpp_ocaml_malloc(value bytes, bool *oom);  // as long as bytes, uninitialised

// NBD.Buffer.t (a char bigarray): its data and length in bytes.
void *nbdpp_ocaml_buffer_data(value buf);
size_t nbdpp_ocaml_buffer_size(value buf);

// Around a call that may block.
void nbdpp_ocaml_release(void);
void nbdpp_ocaml_acquire(void);

// A failed call's message and errno, saved right after the call (they are thread-local in the
// C library) and raised once the runtime lock is back.
struct nbdpp_ocaml_error {
  char *msg;
  int errnum;
};
void nbdpp_ocaml_save_error(struct nbdpp_ocaml_error *err);
// Raises the exception a callback of this thread raised, if any (freeing err first, if given).
void nbdpp_ocaml_raise_pending(struct nbdpp_ocaml_error *err);
// Forgets the exception a callback of this thread raised, if any (NBD.close).
void nbdpp_ocaml_drop_pending(void);
// Raises NBD.Error from err (call names the C function, for a message that went missing).
_Noreturn void nbdpp_ocaml_raise_error(struct nbdpp_ocaml_error *err, const char *call);

#endif  // NBDPP_OCAML_H
