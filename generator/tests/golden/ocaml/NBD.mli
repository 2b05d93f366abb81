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

type chunk_callback = bytes -> int64 -> int ref -> int

type debug_callback = string -> string -> int

type extent_callback = string -> int64 -> int64 array -> int ref -> int

type extent64_callback = string -> int64 -> extent array -> int ref -> int

(** {1 Handles} *)

type t
(** A handle.  The garbage collector closes a handle that is no longer reachable; {!close}
    closes it at once. *)

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
