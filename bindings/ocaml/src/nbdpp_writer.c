// nbdpp_writer.c: NBD.Writer_channel, a concurrent writer served from an OCaml thread.  The
// writer callback is C: it queues the handle's outgoing bytes here without the OCaml runtime,
// and the thread takes them and writes them to a duplicate of the socket with the runtime lock
// released, blocking until all of it is out (EAGAIN is waited out should the socket ever be
// non-blocking).
#include "nbdpp_ocaml.h"

#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <pthread.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include <caml/alloc.h>
#include <caml/custom.h>
#include <caml/fail.h>
#include <caml/memory.h>
#include <caml/unixsupport.h>

#include <libnbd.h>

// Shared by the writer closure (the C library holds it until nbd_close) and the OCaml value;
// freed when both are gone.
struct channel {
  pthread_mutex_t lock;
  pthread_cond_t ready;
  int refs;
  // The handle, from when the writer is installed until its free hook runs at nbd_close.
  // nbd_concurrent_writer_error is only called under lock, so never on a freed handle; it takes
  // no handle lock itself, so holding ours around it cannot deadlock with the writer callback
  // (handle locked, then ours).
  struct nbd_handle *h;
  // Whether the free hook has run: the handle is closed (or never took the writer).
  bool closed;
  // Whether the OCaml value is still alive to take the bytes.
  bool receiver;
  // A duplicate of the handle's socket (its number cannot be reused under the thread), -1
  // until known.  The free hook shuts it down: the handle's own descriptor closes, but this
  // one would keep the connection open and a blocked send waiting.
  int sock;
  // Bytes handed over and not taken yet, in order.
  char *data;
  size_t len, cap;
};

#define Channel_val(v) (*(struct channel **)Data_custom_val(v))

static void channel_unref(struct channel *c) {
  pthread_mutex_lock(&c->lock);
  const bool last = --c->refs == 0;
  pthread_mutex_unlock(&c->lock);
  if (!last)
    return;
  if (c->sock != -1)
    close(c->sock);
  free(c->data);
  pthread_cond_destroy(&c->ready);
  pthread_mutex_destroy(&c->lock);
  free(c);
}

static void drop_data(struct channel *c) {
  free(c->data);
  c->data = NULL;
  c->len = c->cap = 0;
}

// nbd_writer_callback: runs with the handle locked, never blocks beyond our lock.
static int writer_push(void *user_data, const void *buf, size_t len) {
  struct channel *c = user_data;
  int err = 0;
  pthread_mutex_lock(&c->lock);
  if (!c->receiver) {
    err = ESHUTDOWN;  // nothing would ever send it
  } else if (len > c->cap - c->len) {
    size_t cap = c->cap > 0 ? c->cap : 65536;
    while (cap - c->len < len && cap <= SIZE_MAX / 2)
      cap *= 2;
    char *p = cap - c->len >= len ? realloc(c->data, cap) : NULL;
    if (p == NULL) {
      err = ENOMEM;
    } else {
      c->data = p;
      c->cap = cap;
    }
  }
  if (err == 0 && len > 0) {
    memcpy(c->data + c->len, buf, len);
    c->len += len;
    pthread_cond_signal(&c->ready);
  }
  pthread_mutex_unlock(&c->lock);
  if (err != 0) {
    errno = err;
    return -1;
  }
  return 0;
}

// The writer's free hook (nbd_close, or nbd_set_concurrent_writer failing).
static void writer_free(void *user_data) {
  struct channel *c = user_data;
  pthread_mutex_lock(&c->lock);
  c->h = NULL;
  c->closed = true;
  drop_data(c);  // the connection is gone: nothing left to send
  if (c->sock != -1)
    shutdown(c->sock, SHUT_RDWR);
  pthread_cond_broadcast(&c->ready);
  pthread_mutex_unlock(&c->lock);
  channel_unref(c);
}

// The OCaml value is gone: a handle still open could never send again, so its connection ends.
static void release_receiver(struct channel *c) {
  pthread_mutex_lock(&c->lock);
  c->receiver = false;
  drop_data(c);
  if (c->h != NULL)
    nbd_concurrent_writer_error(c->h, ESHUTDOWN);
  pthread_mutex_unlock(&c->lock);
  channel_unref(c);
}

static void channel_finalize(value cv) {
  struct channel *c = Channel_val(cv);
  if (c != NULL)
    release_receiver(c);
}

// The fields left out are NULL, which is what every custom_*_default is.
static struct custom_operations channel_ops = {
    .identifier = "nbdpp.writer_channel",
    .finalize = channel_finalize,
};

// Waits for bytes and takes them all (*len of them, to free), or returns NULL once the handle
// is closed.  Called without the runtime lock.
static char *take(struct channel *c, size_t *len) {
  pthread_mutex_lock(&c->lock);
  while (!c->closed && c->len == 0)
    pthread_cond_wait(&c->ready, &c->lock);
  char *data = !c->closed ? c->data : NULL;
  *len = c->len;
  if (data != NULL) {
    c->data = NULL;
    c->len = c->cap = 0;
  }
  pthread_mutex_unlock(&c->lock);
  return data;
}

// Writes all of buf to fd, waiting for POLLOUT on EAGAIN; 0, or the errno of the failed send.
// Called without the runtime lock.
static int send_all(int fd, const char *buf, size_t len) {
  while (len > 0) {
    const ssize_t r = send(fd, buf, len, MSG_NOSIGNAL);
    if (r >= 0) {
      buf += r;
      len -= (size_t)r;
      continue;
    }
    if (errno == EINTR)
      continue;
    if (errno != EAGAIN && errno != EWOULDBLOCK)
      return errno;
    struct pollfd p = {.fd = fd, .events = POLLOUT, .revents = 0};
    if (poll(&p, 1, -1) == -1 && errno != EINTR)
      return errno;
  }
  return 0;
}

static bool is_closed(struct channel *c) {
  pthread_mutex_lock(&c->lock);
  const bool closed = c->closed;
  pthread_mutex_unlock(&c->lock);
  return closed;
}

// Reports err to the handle if it is still open.
static void report(struct channel *c, int err) {
  pthread_mutex_lock(&c->lock);
  if (c->h != NULL)
    nbd_concurrent_writer_error(c->h, err);
  pthread_mutex_unlock(&c->lock);
}

// Installs the writer on h and duplicates the socket; 0, or -1 with *err filled in (the
// library's message, or ours).  Called without the runtime lock.
static int install(struct channel *c, struct nbd_handle *h, struct nbdpp_ocaml_error *err) {
  // A handle without a socket is refused before anything is installed.
  if (nbd_aio_get_fd(h) == -1) {
    nbdpp_ocaml_save_error(err);
    return -1;
  }
  ++c->refs;  // the closure's; the free hook drops it, also when the call fails
  nbd_writer_callback writer = {.callback = writer_push, .user_data = c, .free = writer_free};
  if (nbd_set_concurrent_writer(h, writer) == -1) {
    nbdpp_ocaml_save_error(err);
    return -1;
  }
  pthread_mutex_lock(&c->lock);
  if (!c->closed)
    c->h = h;  // the handle now reaches the channel's failures
  pthread_mutex_unlock(&c->lock);
  // With a writer installed the handle keeps its socket open until nbd_close (a lost connection
  // parks it), so the descriptor is safe to duplicate now, not before.
  const int fd = nbd_aio_get_fd(h);
  if (fd == -1) {
    nbdpp_ocaml_save_error(err);
    return -1;
  }
  const int dup = fcntl(fd, F_DUPFD_CLOEXEC, 0);
  if (dup == -1) {
    err->errnum = errno;
    err->msg = strdup("NBD.Writer_channel.create: cannot duplicate the socket");
    return -1;
  }
  pthread_mutex_lock(&c->lock);
  c->sock = dup;
  pthread_mutex_unlock(&c->lock);
  return 0;
}

value nbdpp_ocaml_writer_channel_create(value hv);
value nbdpp_ocaml_writer_channel_create(value hv) {
  CAMLparam1(hv);
  CAMLlocal1(cv);
  struct nbd_handle *h = nbdpp_ocaml_handle(hv, "nbd_set_concurrent_writer");
  // The block first: it cannot fail once the writer is installed.
  cv = caml_alloc_custom(&channel_ops, sizeof(struct channel *), 0, 1);
  Channel_val(cv) = NULL;
  struct channel *c = calloc(1, sizeof *c);
  if (c == NULL)
    caml_raise_out_of_memory();
  pthread_mutex_init(&c->lock, NULL);
  pthread_cond_init(&c->ready, NULL);
  c->refs = 1;  // the OCaml value's
  c->receiver = true;
  c->sock = -1;
  struct nbdpp_ocaml_error failure = {NULL, 0};
  nbdpp_ocaml_release();
  const int r = install(c, h, &failure);
  if (r == -1)
    release_receiver(c);
  nbdpp_ocaml_acquire();
  if (r == -1)
    nbdpp_ocaml_raise_error(&failure, "nbd_set_concurrent_writer");
  Channel_val(cv) = c;
  CAMLreturn(cv);
}

value nbdpp_ocaml_writer_channel_recv(value cv);
value nbdpp_ocaml_writer_channel_recv(value cv) {
  CAMLparam1(cv);
  CAMLlocal1(b);
  struct channel *c = Channel_val(cv);
  size_t len;
  nbdpp_ocaml_release();
  char *data = take(c, &len);
  nbdpp_ocaml_acquire();
  if (data == NULL)
    CAMLreturn(Val_none);
  b = caml_alloc_initialized_string(len, data);
  free(data);
  CAMLreturn(caml_alloc_some(b));
}

value nbdpp_ocaml_writer_channel_send(value cv, value bytes);
value nbdpp_ocaml_writer_channel_send(value cv, value bytes) {
  CAMLparam2(cv, bytes);
  struct channel *c = Channel_val(cv);
  const size_t len = caml_string_length(bytes);
  bool oom = false;
  char *copy = nbdpp_ocaml_copy_in(bytes, &oom);  // the heap may move without the lock
  if (oom)
    caml_raise_out_of_memory();
  nbdpp_ocaml_release();
  const int err = send_all(c->sock, copy, len);
  nbdpp_ocaml_acquire();
  free(copy);
  if (err != 0)
    unix_error(err, "send", Nothing);
  CAMLreturn(Val_unit);
}

value nbdpp_ocaml_writer_channel_fail(value cv, value uerr);
value nbdpp_ocaml_writer_channel_fail(value cv, value uerr) {
  CAMLparam2(cv, uerr);
  const int err = code_of_unix_error(uerr);
  if (err == 0) {
    struct nbdpp_ocaml_error failure = {strdup("nbd_concurrent_writer_error: err is 0"), EINVAL};
    nbdpp_ocaml_raise_error(&failure, "nbd_concurrent_writer_error");
  }
  report(Channel_val(cv), err);
  CAMLreturn(Val_unit);
}

value nbdpp_ocaml_writer_channel_is_closed(value cv);
value nbdpp_ocaml_writer_channel_is_closed(value cv) {
  return Val_bool(is_closed(Channel_val(cv)));
}

value nbdpp_ocaml_writer_channel_run(value cv);
value nbdpp_ocaml_writer_channel_run(value cv) {
  CAMLparam1(cv);
  struct channel *c = Channel_val(cv);
  nbdpp_ocaml_release();
  size_t len;
  char *data;
  while ((data = take(c, &len)) != NULL) {
    const int err = send_all(c->sock, data, len);
    free(data);
    if (err != 0) {
      // A send cut short by nbd_close (the socket shut down) is no failure.
      report(c, err);
      break;
    }
  }
  nbdpp_ocaml_acquire();
  CAMLreturn(Val_unit);
}
