(* NBD.mli: OCaml binding of mini, a Network Block Device client library. *)
(* GENERATED from api.yaml by generator/generate.py: DO NOT EDIT. *)

(** Client side of the Network Block Device protocol.

    A handle ({!t}) is one connection to one export on a server.  Every call of the C library
    that takes a handle is a function here with the same name, whose first positional argument
    is the handle; optional arguments (command flags, completion callbacks) come first as
    labels.  The C man page of a call, nbd_NAME(3), says more about it.

    Failures raise {!Error}; using a handle after {!close} raises {!Closed}.  The OCaml runtime
    lock is released while a call waits on the network or on the handle, so other OCaml threads
    keep running; callbacks take it back before running OCaml code.  An exception raised by a
    callback makes the callback fail (returning -1, with an errno stored into its [int ref] if it
    has one: the [Unix.Unix_error]'s own, otherwise ECANCELED) and is raised again by the call
    during which it ran; {!close} drops it instead.  Like every callback of the C library, these
    must not call functions on the same handle. *)

(** {1 Errors} *)

exception Error of string * Unix.error option
(** [Error (message, errno)]: a call failed.  [message] starts with the C function's name
    ("nbd_pread: ..."); [errno] is the error number, when the failure has one. *)

exception Closed of string
(** Raised when a handle is used after {!close}; the string names the call. *)

val errno_of_unix_error : Unix.error -> int
(** The C errno value of a [Unix.error], for calls and callbacks that take an errno as an int. *)

(** {1 Enums} *)

module MODE : sig
  type t =
    | IDLE
    (** do nothing *)
    | BUSY
    (** do something *)
    | UNKNOWN of int
    (** a value this binding does not name, passed through as it is *)
end

(** {1 Flags}

    A flag set is a list of flags; the empty list means none. *)

module CMD_FLAG : sig
  type t =
    | FUA
    (** force unit access *)
    | DF
    (** do not fragment *)
    | UNKNOWN of int
    (** bits this binding does not name, passed through as they are *)

  val mask : t list
  (** Every flag of the set. *)
end

module STRICT : sig
  type t =
    | COMMANDS
    (** refuse commands the server did not advertise *)
    | BOUNDS
    (** refuse requests past the end of the export *)
    | UNKNOWN of int
    (** bits this binding does not name, passed through as they are *)

  val mask : t list
  (** Every flag of the set. *)
end

(** {1 Constants}

    Constants are [int32], as in libnbd's own OCaml binding: compare them with
    [Int32.of_int], or turn them into ints with [Int32.to_int]. *)

val read_data : int32
(** [LIBNBD_READ_DATA] *)

val read_hole : int32
(** [LIBNBD_READ_HOLE] *)

val namespace_base : string
(** [LIBNBD_NAMESPACE_BASE]: the base namespace *)

val context_base_allocation : string
(** [LIBNBD_CONTEXT_BASE_ALLOCATION] *)

val context_base_dirty_bitmap : string
(** [LIBNBD_CONTEXT_BASE_DIRTY_BITMAP] *)

val state_hole : int32
(** [LIBNBD_STATE_HOLE] *)

(** {1 Buffers} *)

(** Memory for asynchronous reads and writes, which use it after the call has returned.  A
    buffer is a bigarray of chars: its memory is outside the OCaml heap and never moves, and the
    binding keeps it alive until the command using it has completed. *)
module Buffer : sig
  type t = (char, Bigarray.int8_unsigned_elt, Bigarray.c_layout) Bigarray.Array1.t

  val alloc : int -> t
  (** [alloc n] is a buffer of [n] zero bytes. *)

  val size : t -> int
  (** The length in bytes. *)

  val of_bytes : bytes -> t
  (** A buffer holding a copy of the bytes. *)

  val of_string : string -> t
  (** A buffer holding a copy of the string. *)

  val to_bytes : t -> bytes
  (** A copy of the buffer's contents. *)

  val to_string : t -> string
  (** A copy of the buffer's contents. *)
end

(** {1 Callbacks}

    A callback returns an int, as its C counterpart does.  An [int ref] argument is the C
    callback's [int *error]: what the callback stores there is read back when it returns. *)

type cookie = int64
(** A command's cookie, as the aio calls return it and the aio_command_completed and
    aio_peek_command_completed calls use it. *)

type extent = int64 * int64
(** One extent of a 64-bit block status answer: its length in bytes and its status flags (C's
    [nbd_extent]). *)

type completion_callback = int ref -> int

type chunk_callback = bytes -> int64 -> int -> int ref -> int

type debug_callback = string -> string -> int

type extent_callback = string -> int64 -> int64 array -> int ref -> int

type writer_callback = bytes -> int
(** Called for every piece of data the handle sends; queue a copy of buf and return 0. *)

type extent64_callback = string -> int64 -> extent array -> int ref -> int

(** {1 Handles} *)

type t
(** A handle.  The garbage collector closes a handle that is no longer reachable; {!close}
    closes it at once. *)

val with_handle : (t -> 'a) -> 'a
(** [with_handle f] creates a handle, applies [f] to it and closes it, also when [f] raises. *)

val callbacks_held : unit -> int
(** The number of OCaml callbacks (and aio buffers) the C library currently holds, over all
    handles.  Each is released exactly once: when its command has completed or the call that took
    it failed, when it is replaced, or when the handle is closed.  Meant for leak tests. *)

(** {1 Calls} *)

val close : t -> unit
(** [close t]: close a handle.

    Closes the handle.

    In OCaml: closing a closed handle does nothing, and exceptions raised by callbacks while
    closing are dropped.  The garbage collector closes unreachable handles by itself.

    C function: [nbd_close]; since TEST_1.0. *)

val create : unit -> t
(** [create ()]: create a handle.

    Creates a handle; close it with {!close}.

    See also {!close}.

    C function: [nbd_create]; since TEST_1.1. *)

val set_mode : t -> MODE.t -> unit
(** [set_mode t mode]: choose the mode.

    Sets the mode; see {!get_mode}.

    {ul
      {li [MODE.BUSY] keeps it busy}
      {li [MODE.IDLE] lets it rest}
    }

    See also {!get_mode}.

    C function: [nbd_set_mode]; since TEST_1.0. *)

val get_mode : t -> MODE.t
(** [get_mode t]: read the mode.

    Returns the mode.

    C function: [nbd_get_mode]; since TEST_1.0. *)

val get_version : t -> string
(** [get_version t]: the library version.

    Returns the version of the library.

    C function: [nbd_get_version]; since TEST_1.1. *)

val pread : ?flags:CMD_FLAG.t list -> t -> bytes -> int64 -> unit
(** [pread ?flags t buf offset]: read data.

    Reads into buf:

    {v
    nbd_pread (h, buf, sizeof buf, 0, 0);
    v}

    See also {!aio_pread}.

    C function: [nbd_pread]; since TEST_1.0. *)

val aio_pread :
  ?completion:completion_callback -> ?flags:CMD_FLAG.t list -> t -> Buffer.t -> int64 ->
  chunk_callback -> cookie
(** [aio_pread ?completion ?flags t buf offset chunk_callback]: start reading data.

    Starts a read; the {!type:chunk_callback} sees each chunk.

    The buffer buf is kept alive until the command has completed.

    See also {!pread}.

    C function: [nbd_aio_pread]; since TEST_1.1. *)

val set_debug_callback : t -> debug_callback -> unit
(** [set_debug_callback t debug_callback]: set the debug callback.

    Sends debug messages to a callback.

    C function: [nbd_set_debug_callback]; since TEST_1.1. *)

val block_status_64 : t -> int64 -> int64 -> string list -> extent64_callback -> unit
(** [block_status_64 t count offset contexts extent64_callback]: describe a range.

    Calls the {!type:extent64_callback} once per context in contexts.

    C function: [nbd_block_status_64]; since TEST_1.1. *)

val get_name : t -> string
(** [get_name t]: get the handle name.

    Returns a copy the caller frees.

    C function: [nbd_get_name]; since TEST_1.1. *)

val stats_bytes_sent : t -> int64
(** [stats_bytes_sent t]: count bytes sent.

    Returns how many bytes were sent.

    C function: [nbd_stats_bytes_sent]; since TEST_1.1. *)

val connect_vsock : t -> int64 -> int64 -> unit
(** [connect_vsock t cid port]: connect over AF_VSOCK.

    Connects to port on the host with context identifier cid.

    cid must fit in 32 bits unsigned, else Invalid_argument is raised.

    port must fit in 32 bits unsigned, else Invalid_argument is raised.

    C function: [nbd_connect_vsock]; since TEST_1.1. *)

val set_debug : t -> bool -> unit
(** [set_debug t debug]: turn debug messages on or off.

    Turns debug messages on or off; [LIBNBD_DEBUG] sets the default.

    See also {!get_debug}, {!set_debug_callback}.

    C function: [nbd_set_debug]; since TEST_1.1. *)

val get_debug : t -> bool
(** [get_debug t]: whether debug messages are on.

    Returns whether debug messages are on.

    See also {!set_debug}.

    C function: [nbd_get_debug]; since TEST_1.1. *)

val set_handle_name : t -> string -> unit
(** [set_handle_name t handle_name]: name the handle.

    Sets the name debug messages start with.

    See also {!get_name}.

    C function: [nbd_set_handle_name]; since TEST_1.1. *)

val set_strict_mode : t -> STRICT.t list -> unit
(** [set_strict_mode t flags]: choose the client-side checks.

    Chooses which requests the library refuses before they reach the server.

    See also {!get_strict_mode}.

    C function: [nbd_set_strict_mode]; since TEST_1.1. *)

val get_strict_mode : t -> STRICT.t list
(** [get_strict_mode t]: the client-side checks in force.

    Returns the checks set with {!set_strict_mode}.

    C function: [nbd_get_strict_mode]; since TEST_1.1. *)

val set_private_data : t -> int -> int
(** [set_private_data t private_data]: keep a value in the handle.

    Keeps a value of the caller's in the handle and returns the previous one.

    C function: [nbd_set_private_data]; since TEST_1.1. *)

val connect_unix : t -> string -> unit
(** [connect_unix t unixsocket]: connect over a Unix domain socket.

    Connects to the server listening on unixsocket.

    C function: [nbd_connect_unix]; since TEST_1.1. *)

val connect_socket : t -> Unix.file_descr -> unit
(** [connect_socket t sock]: connect over a connected socket.

    Talks to the server over sock, which the handle takes over.

    C function: [nbd_connect_socket]; since TEST_1.1. *)

val aio_connect : t -> Unix.sockaddr -> unit
(** [aio_connect t addr]: start connecting to a socket address.

    Starts connecting to addr; {!poll} drives the handshake.

    See also {!poll}.

    C function: [nbd_aio_connect]; since TEST_1.1. *)

val get_protocol : t -> string
(** [get_protocol t]: the protocol the server speaks.

    Returns "newstyle" or "newstyle-fixed".

    C function: [nbd_get_protocol]; since TEST_1.1. *)

val get_size : t -> int64
(** [get_size t]: the size of the export.

    Returns the size of the export in bytes.

    C function: [nbd_get_size]; since TEST_1.1. *)

val get_nr_meta_contexts : t -> int
(** [get_nr_meta_contexts t]: count the metadata contexts.

    Returns how many metadata contexts {!get_meta_context} can return.

    C function: [nbd_get_nr_meta_contexts]; since TEST_1.1. *)

val get_meta_context : t -> int -> string
(** [get_meta_context t i]: a metadata context by index.

    Returns a copy of metadata context i, which the caller frees.

    See also {!get_nr_meta_contexts}.

    C function: [nbd_get_meta_context]; since TEST_1.1. *)

val pwrite : ?flags:CMD_FLAG.t list -> t -> bytes -> int64 -> unit
(** [pwrite ?flags t buf offset]: write data.

    Writes buf at offset.

    See also {!aio_pwrite}.

    C function: [nbd_pwrite]; since TEST_1.1. *)

val aio_pwrite :
  ?completion:completion_callback -> ?flags:CMD_FLAG.t list -> t -> Buffer.t -> int64 -> cookie
(** [aio_pwrite ?completion ?flags t buf offset]: start writing data.

    Starts a write of buf at offset.

    The buffer buf is kept alive until the command has completed.

    See also {!pwrite}.

    C function: [nbd_aio_pwrite]; since TEST_1.1. *)

val poll : t -> int -> int
(** [poll t timeout]: wait for the handle.

    Waits up to timeout milliseconds for the socket and runs the handle; returns 1 when it made
    progress and 0 on timeout.

    See also {!aio_get_fd}.

    C function: [nbd_poll]; since TEST_1.1. *)

val aio_get_fd : t -> Unix.file_descr
(** [aio_get_fd t]: the socket of the handle.

    Returns the file descriptor to poll for {!aio_get_direction}.

    See also {!aio_get_direction}.

    C function: [nbd_aio_get_fd]; since TEST_1.1. *)

val aio_get_direction : t -> int
(** [aio_get_direction t]: what the handle waits for.

    Returns 1 when the handle waits to read, 2 when to write, 3 for both.

    C function: [nbd_aio_get_direction]; since TEST_1.1. *)

val set_concurrent_writer : t -> writer_callback -> unit
(** [set_concurrent_writer t writer]: send outgoing data through an application thread.

    Hands every piece of data the handle sends to the {!type:writer_callback}.

    See also {!concurrent_writer_error}.

    C function: [nbd_set_concurrent_writer]; since TEST_1.1. *)

val concurrent_writer_error : t -> int -> unit
(** [concurrent_writer_error t err]: report a send failure from the concurrent writer.

    Tells the handle that the writer thread failed with errno err.

    See also {!set_concurrent_writer}.

    C function: [nbd_concurrent_writer_error]; since TEST_1.1. *)

(** {1 Concurrent writer from an OCaml thread} *)

(** A concurrent writer ({!set_concurrent_writer}) served by a thread of the program, with no
    socket code in OCaml.  {!Writer_channel.create} installs the writer; the thread then calls
    {!Writer_channel.run}, or {!Writer_channel.recv}, {!Writer_channel.send} and
    {!Writer_channel.fail} for a loop of its own.  The queueing and the writes are done in C,
    with the runtime lock released while they wait.

    {[
      let w = NBD.Writer_channel.create h in
      let writer = Thread.create NBD.Writer_channel.run w in
      NBD.pwrite h buf 0L;              (* sent by the thread *)
      NBD.close h;                      (* the thread's run returns *)
      Thread.join writer
    ]}

    Only closing the handle ends the writer.  The channel holds no reference to the handle, so
    a thread that has only the channel ends when the handle is closed.  A thread that also keeps
    the handle, and that the program joins before closing it, waits for ever: the handle is
    never closed and the writer never ends.  Close handles with {!close} (or {!with_handle})
    rather than leaving them to the garbage collector, which may never get to them while the
    thread waits. *)
module Writer_channel : sig
  type handle := t

  type t
  (** The receiving end of a handle's concurrent writer. *)

  val create : handle -> t
  (** Installs the writer.  The handle must have its socket: connected, or connecting once
      {!aio_get_fd} succeeds (the rest of the handshake then goes through the channel).  Raises
      {!Error} with [EINVAL] on a newly created handle (no socket yet), while negotiating, once
      closed or dead, and when the handle already has a writer; nothing is installed then.
      When the channel is garbage collected while the handle is open, the connection ends with
      [ESHUTDOWN], since nothing could send its requests any more. *)

  val recv : t -> bytes option
  (** Waits for bytes to send and returns all that the handle has queued since the last call, in
      order; [None] once the handle is closed (what was still queued is then dropped). *)

  val send : t -> bytes -> unit
  (** Writes all the bytes to (a duplicate of) the handle's socket, waiting for room while it is
      full, although the socket is non-blocking.  Raises [Unix.Unix_error] if [send(2)] fails;
      once the handle is closed that is [EPIPE], as the socket is then shut down. *)

  val fail : t -> Unix.error -> unit
  (** Reports a failed send to the handle (as {!concurrent_writer_error}): its connection ends
      and every command in flight fails with the error.  Only the first error counts.  Does
      nothing once the handle is closed.  Raises {!Error} with [EINVAL] for an error without an
      errno ([Unix.EUNKNOWNERR 0]). *)

  val is_closed : t -> bool
  (** Whether the handle has been closed: {!recv} returns [None] from now on. *)

  val run : t -> unit
  (** Serves the writer until the handle is closed: takes what the handle queues and sends it,
      all in C without the runtime lock.  After a failed send it reports the error (as {!fail})
      and returns. *)
end
