(* NBD.ml: OCaml binding of mini: types, then one external per call (nbd_stubs.c). *)
(* GENERATED from api.yaml by generator/generate.py: DO NOT EDIT. *)

exception Error of string * Unix.error option
exception Closed of string

(* The stubs raise these by name (nbdpp_runtime.c). *)
let () =
  Callback.register_exception "nbdpp_ocaml_error" (Error ("", None));
  Callback.register_exception "nbdpp_ocaml_closed" (Closed "")

external errno_of_unix_error : Unix.error -> int = "nbdpp_ocaml_errno_of_unix_error"

module MODE = struct
  type t =
    | IDLE
    | BUSY
    | UNKNOWN of int
end

module CMD_FLAG = struct
  type t =
    | FUA
    | DF
    | UNKNOWN of int

  let mask = [FUA; DF]
end

module STRICT = struct
  type t =
    | COMMANDS
    | BOUNDS
    | UNKNOWN of int

  let mask = [COMMANDS; BOUNDS]
end

let read_data = 1l
let read_hole = 2l
let namespace_base = "base:"
let context_base_allocation = "base:allocation"
let context_base_dirty_bitmap = "base:dirty-bitmap:"
let state_hole = 1l

module Buffer = struct
  type t = (char, Bigarray.int8_unsigned_elt, Bigarray.c_layout) Bigarray.Array1.t

  let alloc n =
    let b = Bigarray.Array1.create Bigarray.char Bigarray.c_layout n in
    Bigarray.Array1.fill b '\000';
    b

  let size = Bigarray.Array1.dim

  let of_string s =
    let b = Bigarray.Array1.create Bigarray.char Bigarray.c_layout (String.length s) in
    String.iteri (Bigarray.Array1.unsafe_set b) s;
    b

  let of_bytes b = of_string (Bytes.unsafe_to_string b)

  let to_bytes b = Bytes.init (size b) (Bigarray.Array1.unsafe_get b)

  let to_string b = Bytes.unsafe_to_string (to_bytes b)
end

type cookie = int64

type extent = int64 * int64

type completion_callback = int ref -> int

type chunk_callback = bytes -> int64 -> int -> int ref -> int

type debug_callback = string -> string -> int

type extent_callback = string -> int64 -> int64 array -> int ref -> int

type writer_callback = bytes -> int

type extent64_callback = string -> int64 -> extent array -> int ref -> int

type t

external callbacks_held : unit -> int = "nbdpp_ocaml_callbacks_held"

external close : t -> unit
  = "nbdpp_ocaml_close"

external create : unit -> t
  = "nbdpp_ocaml_create"

external set_mode : t -> MODE.t -> unit
  = "nbdpp_ocaml_set_mode"

external get_mode : t -> MODE.t
  = "nbdpp_ocaml_get_mode"

external get_version : t -> string
  = "nbdpp_ocaml_get_version"

external pread : ?flags:CMD_FLAG.t list -> t -> bytes -> int64 -> unit
  = "nbdpp_ocaml_pread"

external aio_pread :
  ?completion:completion_callback -> ?flags:CMD_FLAG.t list -> t -> Buffer.t -> int64 ->
  chunk_callback -> cookie
  = "nbdpp_ocaml_aio_pread_byte" "nbdpp_ocaml_aio_pread"

external set_debug_callback : t -> debug_callback -> unit
  = "nbdpp_ocaml_set_debug_callback"

external block_status_64 : t -> int64 -> int64 -> string list -> extent64_callback -> unit
  = "nbdpp_ocaml_block_status_64"

external get_name : t -> string
  = "nbdpp_ocaml_get_name"

external stats_bytes_sent : t -> int64
  = "nbdpp_ocaml_stats_bytes_sent"

external connect_vsock : t -> int64 -> int64 -> unit
  = "nbdpp_ocaml_connect_vsock"

external set_debug : t -> bool -> unit
  = "nbdpp_ocaml_set_debug"

external get_debug : t -> bool
  = "nbdpp_ocaml_get_debug"

external set_handle_name : t -> string -> unit
  = "nbdpp_ocaml_set_handle_name"

external set_strict_mode : t -> STRICT.t list -> unit
  = "nbdpp_ocaml_set_strict_mode"

external get_strict_mode : t -> STRICT.t list
  = "nbdpp_ocaml_get_strict_mode"

external set_private_data : t -> int -> int
  = "nbdpp_ocaml_set_private_data"

external connect_unix : t -> string -> unit
  = "nbdpp_ocaml_connect_unix"

external connect_socket : t -> Unix.file_descr -> unit
  = "nbdpp_ocaml_connect_socket"

external aio_connect : t -> Unix.sockaddr -> unit
  = "nbdpp_ocaml_aio_connect"

external get_protocol : t -> string
  = "nbdpp_ocaml_get_protocol"

external get_size : t -> int64
  = "nbdpp_ocaml_get_size"

external get_nr_meta_contexts : t -> int
  = "nbdpp_ocaml_get_nr_meta_contexts"

external get_meta_context : t -> int -> string
  = "nbdpp_ocaml_get_meta_context"

external pwrite : ?flags:CMD_FLAG.t list -> t -> bytes -> int64 -> unit
  = "nbdpp_ocaml_pwrite"

external aio_pwrite :
  ?completion:completion_callback -> ?flags:CMD_FLAG.t list -> t -> Buffer.t -> int64 -> cookie
  = "nbdpp_ocaml_aio_pwrite"

external poll : t -> int -> int
  = "nbdpp_ocaml_poll"

external aio_get_fd : t -> Unix.file_descr
  = "nbdpp_ocaml_aio_get_fd"

external aio_get_direction : t -> int
  = "nbdpp_ocaml_aio_get_direction"

external set_concurrent_writer : t -> writer_callback -> unit
  = "nbdpp_ocaml_set_concurrent_writer"

external concurrent_writer_error : t -> int -> unit
  = "nbdpp_ocaml_concurrent_writer_error"

let with_handle f =
  let h = create () in
  Fun.protect ~finally:(fun () -> close h) (fun () -> f h)

module Writer_channel = struct
  type handle = t
  type t

  external create : handle -> t = "nbdpp_ocaml_writer_channel_create"
  external recv : t -> bytes option = "nbdpp_ocaml_writer_channel_recv"
  external send : t -> bytes -> unit = "nbdpp_ocaml_writer_channel_send"
  external fail : t -> Unix.error -> unit = "nbdpp_ocaml_writer_channel_fail"
  external is_closed : t -> bool = "nbdpp_ocaml_writer_channel_is_closed"
  external run : t -> unit = "nbdpp_ocaml_writer_channel_run"
end
